package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// Mint signs claims as a compact JWS for local testing (`sluice token`) and tests. key is an HMAC
// secret ([]byte) or a private key (*rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey); alg
// "" picks the key's natural algorithm. The same key/algorithm binding as verification applies:
// an ES384 token needs a P-384 key, an HS256 secret at least 32 bytes. kid is omitted when "".
func Mint(alg string, key any, kid string, claims map[string]any) (string, error) {
	if alg == "" {
		alg = defaultAlgorithm(key)
	}
	a, ok := algorithms[alg]
	if !ok {
		return "", fmt.Errorf("unsupported algorithm %q", alg)
	}
	pub, err := publicHalf(key)
	if err != nil {
		return "", err
	}
	if !keyFits(a, pub) {
		if secret, isSecret := key.([]byte); isSecret && a.fam == famHMAC {
			return "", fmt.Errorf("%s needs a secret of at least %d bytes, got %d", alg, a.minSecret, len(secret))
		}
		return "", fmt.Errorf("a %s cannot sign %s", keyFamily(key), alg)
	}
	hdr := struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid,omitempty"`
	}{Alg: alg, Typ: "JWT", Kid: kid}
	hb, err := json.Marshal(hdr)
	if err != nil {
		return "", fmt.Errorf("encoding header: %w", err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	input := b64.AppendEncode(nil, hb)
	input = append(input, '.')
	input = b64.AppendEncode(input, pb)
	sig, err := jwsbb.Sign(key, alg, input, nil)
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	out := append(input, '.')
	out = b64.AppendEncode(out, sig)
	return string(out), nil
}

// publicHalf returns what verification would use for key, so Mint applies the same checks.
func publicHalf(key any) (any, error) {
	switch k := key.(type) {
	case []byte:
		return k, nil
	case *rsa.PrivateKey:
		return &k.PublicKey, nil
	case *ecdsa.PrivateKey:
		return &k.PublicKey, nil
	case ed25519.PrivateKey:
		return k.Public(), nil
	}
	return nil, fmt.Errorf("unsupported signing key type %T", key)
}
