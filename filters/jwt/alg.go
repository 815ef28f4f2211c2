package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"slices"
)

// family is the kind of key an algorithm needs. Binding every algorithm to exactly one key family
// (and ECDSA algorithms to one curve) is what defeats HMAC/public-key confusion and key type
// mismatch: an RSA public key is never a candidate for an HS256 token, whatever the token says.
type family uint8

const (
	famHMAC family = iota + 1
	famRSA         // PKCS #1 v1.5 (RS*) and PSS (PS*) share RSA keys
	famECDSA
	famEdDSA
)

func (f family) String() string {
	switch f {
	case famHMAC:
		return "HMAC secret"
	case famRSA:
		return "RSA key"
	case famECDSA:
		return "ECDSA key"
	case famEdDSA:
		return "Ed25519 key"
	}
	return "unknown key"
}

// algorithm is one JWS algorithm Sluice accepts.
type algorithm struct {
	name  string
	fam   family
	curve elliptic.Curve // ECDSA only
	// minSecret is the shortest HMAC secret RFC 7518 §3.2 allows: the hash output size.
	minSecret int
}

// algorithms lists every supported algorithm. "none" is deliberately absent.
var algorithms = map[string]*algorithm{
	"HS256": {name: "HS256", fam: famHMAC, minSecret: 32},
	"HS384": {name: "HS384", fam: famHMAC, minSecret: 48},
	"HS512": {name: "HS512", fam: famHMAC, minSecret: 64},
	"RS256": {name: "RS256", fam: famRSA},
	"RS384": {name: "RS384", fam: famRSA},
	"RS512": {name: "RS512", fam: famRSA},
	"PS256": {name: "PS256", fam: famRSA},
	"PS384": {name: "PS384", fam: famRSA},
	"PS512": {name: "PS512", fam: famRSA},
	"ES256": {name: "ES256", fam: famECDSA, curve: elliptic.P256()},
	"ES384": {name: "ES384", fam: famECDSA, curve: elliptic.P384()},
	"ES512": {name: "ES512", fam: famECDSA, curve: elliptic.P521()},
	"EdDSA": {name: "EdDSA", fam: famEdDSA},
}

// asymmetricAlgorithms is the default for key sets fetched from a JWKS: every public-key algorithm.
var asymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// algorithmNames lists the supported names, sorted, for error messages.
func algorithmNames() []string {
	out := make([]string, 0, len(algorithms))
	for n := range algorithms {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// minRSABits is the smallest RSA modulus accepted for verification or signing.
const minRSABits = 2048

// keyFits reports whether key (a public key or an HMAC secret) may verify tokens of algorithm a.
func keyFits(a *algorithm, key any) bool {
	switch k := key.(type) {
	case []byte:
		return a.fam == famHMAC && len(k) >= a.minSecret
	case *rsa.PublicKey:
		return a.fam == famRSA && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return a.fam == famECDSA && k.Curve == a.curve
	case ed25519.PublicKey:
		return a.fam == famEdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}

// defaultAlgorithm picks the algorithm for a public or private key when none is given.
func defaultAlgorithm(key any) string {
	switch k := key.(type) {
	case []byte:
		return "HS256"
	case *rsa.PublicKey, *rsa.PrivateKey:
		return "RS256"
	case *ecdsa.PublicKey:
		return ecdsaAlgorithm(k.Curve)
	case *ecdsa.PrivateKey:
		return ecdsaAlgorithm(k.Curve)
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "EdDSA"
	}
	return ""
}

func ecdsaAlgorithm(c elliptic.Curve) string {
	for _, n := range []string{"ES256", "ES384", "ES512"} {
		if algorithms[n].curve == c {
			return n
		}
	}
	return ""
}
