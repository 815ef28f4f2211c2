package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// verifyKey is one key the filter may verify with.
type verifyKey struct {
	kid string
	// alg is the JWK "alg" member: when set, the key verifies only that algorithm.
	alg string
	// pub is *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (an HMAC secret).
	pub any
}

func (k *verifyKey) fits(a *algorithm) bool {
	return (k.alg == "" || k.alg == a.name) && keyFits(a, k.pub)
}

// keySet is an immutable set of keys; a refresh replaces the whole set. The verified-token cache
// remembers which set verified a token, so a rotation that drops a key also drops its tokens.
type keySet struct {
	byKid map[string][]*verifyKey
	// noKid are the keys without a kid: a static key, or JWKS entries that carry none.
	noKid []*verifyKey
	all   []*verifyKey
}

func newKeySet(keys []*verifyKey) *keySet {
	s := &keySet{byKid: map[string][]*verifyKey{}, all: keys}
	for _, k := range keys {
		if k.kid == "" {
			s.noKid = append(s.noKid, k)
		} else {
			s.byKid[k.kid] = append(s.byKid[k.kid], k)
		}
	}
	return s
}

// candidates returns the keys a token with this kid may be verified with, and whether the kid
// was known. A token without a kid may be verified by any key; a token whose kid names no key
// falls back to the keys that have no kid (a single static key ignores kids).
func (s *keySet) candidates(kid string) (keys []*verifyKey, known bool) {
	if kid == "" {
		return s.all, true
	}
	if ks, ok := s.byKid[kid]; ok {
		return ks, true
	}
	return s.noKid, len(s.noKid) > 0
}

// parseJWKS reads a JSON Web Key Set (or a single JWK). Entries that cannot verify signatures
// (encryption keys, unsupported types, RSA keys under 2048 bits) are skipped and reported in
// skipped; it fails only when no usable key remains.
func parseJWKS(data []byte) (set *keySet, skipped []error, err error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, nil, fmt.Errorf("parsing JWKS: want a JSON object, a key set {\"keys\":[…]} or a single JWK: %w", err)
	}
	var js jwk.Set
	if _, isSet := obj["keys"]; !isSet {
		// jwk.Parse refuses WithIgnoreParseError for a sole key, and without it a key jwx cannot
		// read would fail the whole set: a bare key goes through ParseKey instead.
		k, err := jwk.ParseKey(data)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing JWK: %w", err)
		}
		js = jwk.NewSet()
		if err := js.AddKey(k); err != nil {
			return nil, nil, fmt.Errorf("parsing JWK: %w", err)
		}
	} else if js, err = jwk.Parse(data, jwk.WithIgnoreParseError(true)); err != nil {
		return nil, nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	var keys []*verifyKey
	for i := range js.Len() {
		k, _ := js.Key(i)
		kid, _ := k.KeyID()
		vk, err := fromJWK(k)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, kid, err))
			continue
		}
		keys = append(keys, vk)
	}
	if len(keys) == 0 {
		if len(skipped) == 0 {
			return nil, nil, errors.New("JWKS holds no usable signing key: it has no key of a type Sluice reads")
		}
		return nil, skipped, fmt.Errorf("JWKS holds no usable signing key: %w", errors.Join(skipped...))
	}
	return newKeySet(keys), skipped, nil
}

func fromJWK(k jwk.Key) (*verifyKey, error) {
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("use %q is not \"sig\"", use)
	}
	if ops, ok := k.KeyOps(); ok && !slices.Contains(toStrings(ops), "verify") {
		return nil, errors.New(`key_ops does not include "verify"`)
	}
	vk := &verifyKey{}
	vk.kid, _ = k.KeyID()
	if a, ok := k.Algorithm(); ok {
		name := a.String()
		if _, known := algorithms[name]; !known {
			return nil, fmt.Errorf("alg %q is not a supported signature algorithm", name)
		}
		vk.alg = name
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, fmt.Errorf("exporting key: %w", err)
	}
	pub, err := publicKey(raw)
	if err != nil {
		return nil, err
	}
	vk.pub = pub
	if vk.alg != "" && !keyFits(algorithms[vk.alg], pub) {
		return nil, fmt.Errorf("a %s cannot verify %s", keyFamily(pub), vk.alg)
	}
	return vk, nil
}

func toStrings(ops jwk.KeyOperationList) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = string(o)
	}
	return out
}

// publicKey reduces a raw key to the form verification uses; private keys yield their public half.
func publicKey(raw any) (any, error) {
	switch k := raw.(type) {
	case []byte:
		if len(k) == 0 {
			return nil, errors.New("empty symmetric key")
		}
		return k, nil
	case *rsa.PublicKey:
		return checkRSA(k)
	case *rsa.PrivateKey:
		return checkRSA(&k.PublicKey)
	case *ecdsa.PublicKey:
		return checkEC(k)
	case *ecdsa.PrivateKey:
		return checkEC(&k.PublicKey)
	case ed25519.PublicKey:
		return k, nil
	case ed25519.PrivateKey:
		return k.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("unsupported key type %T", raw)
}

func checkRSA(k *rsa.PublicKey) (any, error) {
	if k.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key of %d bits is too small (minimum %d)", k.N.BitLen(), minRSABits)
	}
	return k, nil
}

func checkEC(k *ecdsa.PublicKey) (any, error) {
	if ecdsaAlgorithm(k.Curve) == "" {
		return nil, fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
	}
	return k, nil
}

func keyFamily(key any) family {
	switch key.(type) {
	case []byte:
		return famHMAC
	case *rsa.PublicKey, *rsa.PrivateKey:
		return famRSA
	case *ecdsa.PublicKey, *ecdsa.PrivateKey:
		return famECDSA
	case ed25519.PublicKey, ed25519.PrivateKey:
		return famEdDSA
	}
	return 0
}

// parsePEMPublicKey reads a PEM public key (PKIX "PUBLIC KEY", "RSA PUBLIC KEY" or a certificate).
// A private key is refused: the gateway only needs, and should only hold, the public half.
func parsePEMPublicKey(data []byte) (any, error) {
	k, err := jwk.ParseKey(data, jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("parsing PEM key: %w", err)
	}
	if priv, err := jwk.IsPrivateKey(k); err == nil && priv {
		return nil, errors.New("the file holds a private key: give the gateway the public key only")
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, fmt.Errorf("exporting PEM key: %w", err)
	}
	if _, ok := raw.([]byte); ok {
		return nil, errors.New("not a public key")
	}
	return publicKey(raw)
}

// ParsePrivateKeyPEM reads a PEM private key (PKCS #8, PKCS #1 RSA or SEC 1 EC) for Mint: it
// returns *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey.
func ParsePrivateKeyPEM(data []byte) (any, error) {
	k, err := jwk.ParseKey(data, jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("parsing PEM key: %w", err)
	}
	if priv, err := jwk.IsPrivateKey(k); err != nil || !priv {
		return nil, errors.New("the file holds no private key")
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, fmt.Errorf("exporting PEM key: %w", err)
	}
	switch raw.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return raw, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", raw)
}
