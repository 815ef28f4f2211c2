package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
	"github.com/sluice-gateway/sluice/engine"
)

func seg(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

func segRaw(s string) string { return b64.EncodeToString([]byte(s)) }

// forge signs hdr and claims as given, bypassing Mint's checks, the way an attacker would.
func forge(t testing.TB, hdr, claims any, alg string, key any) string {
	t.Helper()
	var h, p string
	if s, ok := hdr.(string); ok {
		h = segRaw(s)
	} else {
		h = seg(t, hdr)
	}
	if s, ok := claims.(string); ok {
		p = segRaw(s)
	} else {
		p = seg(t, claims)
	}
	in := h + "." + p
	sig, err := jwsbb.Sign(key, alg, []byte(in), nil)
	if err != nil {
		t.Fatalf("forging %s: %v", alg, err)
	}
	return in + "." + b64.EncodeToString(sig)
}

// segments splits a token into its three parts.
func segments(tok string) (h, p, s string) {
	parts := strings.SplitN(tok, ".", 3)
	return parts[0], parts[1], parts[2]
}

// nonCanonical sets the unused low bits of a segment's last character: the same bytes decode
// from it under a lenient decoder.
func nonCanonical(t testing.TB, s string) string {
	t.Helper()
	if len(s)%4 == 0 {
		t.Fatalf("segment of length %d has no spare bits", len(s))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|1])
}

func selfSignedCert(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "auth.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestHostileTokens runs attacks from the JWT literature against a filter that trusts an RSA and
// an ECDSA key from a JWKS file and accepts RS256, ES256 and HS256. Every token must be refused
// with 401 invalid_token, for the expected reason.
func TestHostileTokens(t *testing.T) {
	dir := t.TempDir()
	rsaGood, ecGood := rsaKey(t, 0), ecKey(t, elliptic.P256())
	rsaEvil, ecEvil, ec384 := rsaKey(t, 2), ecKey(t, elliptic.P256()), ecKey(t, elliptic.P384())
	// No "alg" members in the JWKS: the binding of algorithm to key type must hold on its own.
	writeFile(t, dir, "jwks.json", jwksJSON(t, jwksKey{kid: "rsa1", key: rsaGood}, jwksKey{kid: "ec1", key: ecGood}))
	f := build(t, config(t, func(c *Config) {
		c.JWKSFile = "jwks.json"
		c.Algorithms = []string{"RS256", "ES256", "HS256"}
		c.Issuer = "https://auth.example.com/"
		c.Audiences = []string{"catalog"}
	}), dir, options{})

	// A server an attacker would point jku/x5u at: it must never be contacted.
	var attackerHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerHits.Add(1)
		w.Write(jwksJSON(t, jwksKey{kid: "attacker", key: rsaEvil}))
	}))
	defer evil.Close()

	good := claimsFor("alice", nil)
	hdr := func(alg, kid string, extra ...any) map[string]any {
		h := map[string]any{"alg": alg, "typ": "JWT"}
		if kid != "" {
			h["kid"] = kid
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i].(string)] = extra[i+1]
		}
		return h
	}
	valid := forge(t, hdr("RS256", "rsa1"), good, "RS256", rsaGood)
	validEC := forge(t, hdr("ES256", "ec1"), good, "ES256", ecGood)
	for _, tok := range []string{valid, validEC} {
		if ctx, v := run(t, f, bearer(tok)...); v != engine.Continue {
			t.Fatalf("the valid baseline token is refused: %v", ctx.Failure)
		}
	}
	vh, vp, vs := segments(valid)

	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaGood.PublicKey)
	pubPEMBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	evilJWK, _ := jwk.Import(&rsaEvil.PublicKey)
	evilJWKJSON, _ := json.Marshal(evilJWK)
	var evilJWKMap map[string]any
	_ = json.Unmarshal(evilJWKJSON, &evilJWKMap)

	// An ES256 signature in ASN.1 DER instead of the fixed-size r||s JWS form.
	ecIn := vh + "." + vp
	digest := sha256.Sum256([]byte(ecIn))
	derSig, _ := ecdsa.SignASN1(rand.Reader, ecGood, digest[:])

	sigBytes, _ := b64.DecodeString(vs)
	flipped := append([]byte(nil), sigBytes...)
	flipped[len(flipped)/2] ^= 0x40

	now := time.Now().Unix()
	big := strings.Repeat("x", MaxTokenBytes)

	cases := []struct {
		name string
		tok  string
		want error
	}{
		{"alg none, empty signature", seg(t, hdr("none", "")) + "." + vp + ".", ErrMalformed},
		{"alg none with a signature", seg(t, hdr("none", "")) + "." + vp + "." + vs, ErrAlgNone},
		{"alg NoNe mixed case", seg(t, hdr("NoNe", "")) + "." + vp + "." + vs, ErrAlgNone},
		{"alg missing", seg(t, map[string]any{"typ": "JWT"}) + "." + vp + "." + vs, ErrMalformed},
		{"alg lower-case rs256", forge(t, hdr("rs256", "rsa1"), good, "RS256", rsaGood), ErrAlgUnsupported},
		{"alg not listed: RS512 by the real key", forge(t, hdr("RS512", "rsa1"), good, "RS512", rsaGood), ErrAlgNotAllowed},
		{"alg not listed: PS256 by the real key", forge(t, hdr("PS256", "rsa1"), good, "PS256", rsaGood), ErrAlgNotAllowed},
		{"HMAC confusion: HS256 keyed with the public PEM", forge(t, hdr("HS256", "rsa1"), good, "HS256", pubPEMBytes), ErrKeyMismatch},
		{"HMAC confusion: HS256 keyed with the public DER, no kid", forge(t, hdr("HS256", ""), good, "HS256", pubDER), ErrKeyMismatch},
		{"key type mismatch: ES256 naming the RSA kid", forge(t, hdr("ES256", "rsa1"), good, "ES256", ecEvil), ErrKeyMismatch},
		{"key type mismatch: RS256 naming the EC kid", forge(t, hdr("RS256", "ec1"), good, "RS256", rsaEvil), ErrKeyMismatch},
		{"right key type, wrong key", forge(t, hdr("ES256", "ec1"), good, "ES256", ecEvil), ErrSignature},
		{"ES256 header signed with a P-384 key", forge(t, hdr("ES256", "ec1"), good, "ES384", ec384), ErrSignature},
		{"kid path traversal", forge(t, hdr("RS256", "../../../../dev/null"), good, "RS256", rsaEvil), ErrUnknownKey},
		{"kid SQL injection", forge(t, hdr("RS256", "x' UNION SELECT 'secret' --"), good, "RS256", rsaEvil), ErrUnknownKey},
		{"kid with a line break", forge(t, hdr("RS256", "rsa1\nX-Evil: 1"), good, "RS256", rsaEvil), ErrMalformed},
		{"kid oversized", forge(t, hdr("RS256", strings.Repeat("k", 1000)), good, "RS256", rsaEvil), ErrMalformed},
		{"embedded jwk with the real kid", forge(t, hdr("RS256", "rsa1", "jwk", evilJWKMap), good, "RS256", rsaEvil), ErrSignature},
		{"embedded jwk without kid", forge(t, hdr("RS256", "", "jwk", evilJWKMap), good, "RS256", rsaEvil), ErrSignature},
		{"jku to the attacker's JWKS", forge(t, hdr("RS256", "attacker", "jku", evil.URL), good, "RS256", rsaEvil), ErrUnknownKey},
		{"x5u to the attacker", forge(t, hdr("RS256", "rsa1", "x5u", evil.URL), good, "RS256", rsaEvil), ErrSignature},
		{"x5c with the attacker's certificate", forge(t, hdr("ES256", "", "x5c", []any{selfSignedCert(t, ecEvil)}), good, "ES256", ecEvil), ErrSignature},
		{"crit extension, otherwise valid", forge(t, hdr("RS256", "rsa1", "crit", []any{"exp"}), good, "RS256", rsaGood), ErrCrit},
		{"crit b64 false (unencoded payload)", forge(t, hdr("RS256", "rsa1", "crit", []any{"b64"}, "b64", false), good, "RS256", rsaGood), ErrCrit},
		{"b64 false without crit", forge(t, hdr("RS256", "rsa1", "b64", false), good, "RS256", rsaGood), ErrHeader},
		{"zip header", forge(t, hdr("RS256", "rsa1", "zip", "DEF"), good, "RS256", rsaGood), ErrHeader},
		{"JWE enc header", forge(t, hdr("RS256", "rsa1", "enc", "A128GCM"), good, "RS256", rsaGood), ErrHeader},
		{"non-canonical base64 signature", vh + "." + vp + "." + nonCanonical(t, vs), ErrMalformed},
		{"non-canonical base64 header", nonCanonical(t, vh) + "." + vp + "." + vs, ErrMalformed},
		{"base64 padding", vh + "." + vp + "." + vs + "==", ErrMalformed},
		{"standard base64 alphabet", vh + "." + vp + "." + strings.NewReplacer("-", "+", "_", "/").Replace(vs) + "+/", ErrMalformed},
		{"line break inside", vh + "." + vp[:10] + "\n" + vp[10:] + "." + vs, ErrMalformed},
		{"oversized", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"pad": big}), "RS256", rsaGood), ErrTooLarge},
		{"expired", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"exp": now - 3600}), "RS256", rsaGood), ErrExpired},
		{"not yet valid", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"nbf": now + 3600}), "RS256", rsaGood), ErrNotYetValid},
		{"issued in the future", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"iat": now + 3600}), "RS256", rsaGood), ErrIssuedFuture},
		{"no exp", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"exp": nil}), "RS256", rsaGood), ErrNoExpiry},
		{"exp as a string", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"exp": "9999999999"}), "RS256", rsaGood), ErrClaims},
		{"EXP upper-case only", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"exp": nil, "EXP": now + 3600}), "RS256", rsaGood), ErrNoExpiry},
		{"wrong issuer", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"iss": "https://evil.example.com/"}), "RS256", rsaGood), ErrIssuer},
		{"wrong audience", forge(t, hdr("RS256", "rsa1"), claimsFor("alice", map[string]any{"aud": []any{"billing"}}), "RS256", rsaGood), ErrAudience},
		{"truncated signature", vh + "." + vp + "." + vs[:len(vs)/4*4-4], ErrSignature},
		{"truncated to two segments", vh + "." + vp, ErrMalformed},
		{"bad signature: one bit flipped", vh + "." + vp + "." + b64.EncodeToString(flipped), ErrSignature},
		{"header and payload swapped", vp + "." + vh + "." + vs, ErrMalformed},
		{"payload replaced, signature kept", vh + "." + seg(t, claimsFor("admin", nil)) + "." + vs, ErrSignature},
		{"five segments (JWE shape)", vh + "." + vp + "." + vs + ".AAAA.AAAA", ErrMalformed},
		{"header is a JSON array", segRaw(`["RS256"]`) + "." + vp + "." + vs, ErrMalformed},
		{"duplicate alg, last is none", segRaw(`{"alg":"RS256","kid":"rsa1","alg":"none"}`) + "." + vp + "." + vs, ErrAlgNone},
		{"ALG upper-case key only", segRaw(`{"ALG":"RS256","kid":"rsa1"}`) + "." + vp + "." + vs, ErrMalformed},
		{"payload is JSON null", forge(t, hdr("RS256", "rsa1"), "null", "RS256", rsaGood), ErrMalformed},
		{"payload with trailing garbage", forge(t, hdr("RS256", "rsa1"), `{"sub":"a"}x`, "RS256", rsaGood), ErrMalformed},
		{"ES256 signature in ASN.1 DER form", seg(t, hdr("ES256", "ec1")) + "." + vp + "." + b64.EncodeToString(derSig), ErrSignature},
		{"signature transplanted from another token", vh + "." + vp + "." + func() string { _, _, s := segments(validEC); return s }(), ErrSignature},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d hostile tokens", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, v := run(t, f, bearer(c.tok)...)
			if v != engine.Respond || ctx.Response.StatusCode() != 401 {
				t.Fatalf("verdict %v status %d, want 401", v, ctx.Response.StatusCode())
			}
			if !errors.Is(ctx.Failure, c.want) {
				t.Errorf("refused for %v, want %v", ctx.Failure, c.want)
			}
			ch := string(ctx.Response.Header.Peek("WWW-Authenticate"))
			if !strings.HasPrefix(ch, `Bearer realm="api", error="invalid_token", error_description="`) {
				t.Errorf("WWW-Authenticate = %q", ch)
			}
			if body := string(ctx.Response.Body()); body != "Unauthorized\n" {
				t.Errorf("body = %q, want the standard short body", body)
			}
			if _, ok := engine.ClaimsKey.Get(ctx); ok {
				t.Error("claims were set for a refused token")
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's jku/x5u server was contacted %d times", n)
	}
}
