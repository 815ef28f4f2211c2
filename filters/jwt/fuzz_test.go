package jwt

import (
	"bytes"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func fuzzSeeds(f *testing.F, secret []byte) {
	claims := claimsFor("alice", map[string]any{"scope": "a b", "n": 1.5, "nested": map[string]any{"x": []any{1, "y"}}})
	f.Add(mint(f, "HS256", secret, "", claims))
	f.Add(mint(f, "HS512", append(secret, secret...), "kid-1", claims))
	f.Add(mint(f, "ES256", ecKey(f, elliptic.P256()), "ec", claims))
	f.Add(mint(f, "EdDSA", edKey(f), "ed", claims))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	f.Add("eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiYjY0Il19.e30.AAAA")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	f.Add(strings.Repeat("A", 100) + "." + strings.Repeat("B", 100) + "." + strings.Repeat("C", 43))
}

// FuzzParse checks that Parse never panics and that whatever it accepts is canonical: each
// segment re-encodes to exactly the bytes sent, the algorithm is a supported one, and the
// signing input is the token's first two segments.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f, hmacSecret(32))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse([]byte(s))
		if err != nil {
			if tok != nil {
				t.Fatal("token returned with an error")
			}
			return
		}
		if _, ok := algorithms[tok.Alg]; !ok || strings.EqualFold(tok.Alg, "none") {
			t.Fatalf("accepted alg %q", tok.Alg)
		}
		parts := strings.Split(s, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %d segments", len(parts))
		}
		if string(tok.SigningInput) != parts[0]+"."+parts[1] {
			t.Fatalf("signing input %q is not the first two segments", tok.SigningInput)
		}
		if b64.EncodeToString(tok.Signature) != parts[2] {
			t.Fatalf("signature segment %q is not canonical", parts[2])
		}
		for _, p := range parts[:2] {
			dec, err := b64.DecodeString(p)
			if err != nil || b64.EncodeToString(dec) != p {
				t.Fatalf("segment %q is not canonical base64url", p)
			}
		}
		if tok.Claims == nil || len(s) > MaxTokenBytes {
			t.Fatal("accepted without claims or oversized")
		}
	})
}

// FuzzFilter runs arbitrary tokens through an HMAC-keyed filter: it must never panic, and it may
// only accept a token whose HMAC over its signing input is right (checked here with crypto/hmac,
// independently of jwx) and whose claims carry a future exp.
func FuzzFilter(f *testing.F) {
	secret := hmacSecret(64)
	fuzzSeeds(f, secret)
	filt := build(f, config(f, func(c *Config) {
		c.HMACSecret = string(secret)
		c.Algorithms = []string{"HS256", "HS384", "HS512"}
		c.ForwardClaims = map[string]string{"sub": "X-User-Id"}
	}), f.TempDir(), options{})
	f.Fuzz(func(t *testing.T, s string) {
		c := enginetest.NewCtx(t, "GET", "/")
		c.Request.Header.Set("Authorization", "Bearer "+s)
		v := filt.OnRequest(c)
		if v == engine.Respond {
			if st := c.Response.StatusCode(); st != 401 {
				t.Fatalf("refusal with status %d, want 401", st)
			}
			return
		}
		tok := string(bytes.TrimSpace([]byte(s)))
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q", s)
		}
		hdr, _ := b64.DecodeString(parts[0])
		var h func() hash.Hash
		switch {
		case bytes.Contains(hdr, []byte(`"HS256"`)):
			h = sha256.New
		case bytes.Contains(hdr, []byte(`"HS384"`)):
			h = sha512.New384
		case bytes.Contains(hdr, []byte(`"HS512"`)):
			h = sha512.New
		default:
			t.Fatalf("accepted a token whose header names no HMAC algorithm: %q", hdr)
		}
		mac := hmac.New(h, secret)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		sig, _ := b64.DecodeString(parts[2])
		if !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatalf("accepted a token with a wrong HMAC: %q", s)
		}
		if _, ok := engine.ClaimsKey.Get(c); !ok {
			t.Fatal("accepted without claims")
		}
	})
}
