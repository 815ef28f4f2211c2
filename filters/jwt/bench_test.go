package jwt

import (
	"crypto/elliptic"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// benchFilter builds a filter trusting key (under kid "k1", from a JWKS file) for alg, with one
// forwarded claim, and a token for it.
func benchFilter(tb testing.TB, alg string, key any, noCache bool, from string) (*Filter, string) {
	dir := tb.TempDir()
	cfg := config(tb, func(c *Config) {
		if secret, ok := key.([]byte); ok {
			c.HMACSecret = string(secret)
		} else {
			writeFile(tb, dir, "jwks.json", jwksJSON(tb, jwksKey{kid: "k1", key: key}))
			c.JWKSFile = "jwks.json"
		}
		c.Algorithms = []string{alg}
		c.Issuer = "https://auth.example.com/"
		c.Audiences = []string{"catalog"}
		c.ForwardClaims = map[string]string{"sub": "X-User-Id", "scope": "X-Scopes"}
		c.From = []string{from}
	})
	f := build(tb, cfg, dir, options{noCache: noCache})
	return f, mint(tb, alg, key, "k1", claimsFor("alice", map[string]any{"scope": "catalog:read catalog:write"}))
}

func benchKeys(tb testing.TB) map[string]any {
	return map[string]any{
		"ES256": ecKey(tb, elliptic.P256()),
		"RS256": rsaKey(tb, 0),
		"EdDSA": edKey(tb),
		"HS256": hmacSecret(32),
	}
}

// BenchmarkFilter measures OnRequest for a valid token: "uncached" parses, verifies the signature
// and checks claims on every request; "cached" is the repeated-token path.
func BenchmarkFilter(b *testing.B) {
	keys := benchKeys(b)
	for _, alg := range []string{"ES256", "RS256", "EdDSA", "HS256"} {
		for _, mode := range []string{"uncached", "cached"} {
			b.Run(alg+"/"+mode, func(b *testing.B) {
				f, tok := benchFilter(b, alg, keys[alg], mode == "uncached", "header:Authorization")
				c := enginetest.NewCtx(b, "GET", "/v1/items", "Authorization", "Bearer "+tok)
				if f.OnRequest(c) != engine.Continue {
					b.Fatalf("token refused: %v", c.Failure)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if f.OnRequest(c) != engine.Continue {
						b.Fatal("refused")
					}
				}
			})
		}
	}
}

// BenchmarkFilterParallel is the cached path from every core at once (shard locks under load).
func BenchmarkFilterParallel(b *testing.B) {
	f, tok := benchFilter(b, "ES256", ecKey(b, elliptic.P256()), false, "header:Authorization")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := enginetest.NewCtx(b, "GET", "/v1/items", "Authorization", "Bearer "+tok)
		for pb.Next() {
			if f.OnRequest(c) != engine.Continue {
				b.Error("refused")
				return
			}
		}
	})
}

// TestCachedPathAllocs holds the repeated-token path to zero allocations, for each token source,
// forwarded claims included.
func TestCachedPathAllocs(t *testing.T) {
	key := ecKey(t, elliptic.P256())
	for _, from := range []string{"header:Authorization", "cookie:session", "query:access_token"} {
		t.Run(from, func(t *testing.T) {
			f, tok := benchFilter(t, "ES256", key, false, from)
			var c *engine.Ctx
			switch from {
			case "header:Authorization":
				c = enginetest.NewCtx(t, "GET", "/v1/items", "Authorization", "Bearer "+tok, "X-User-Id", "spoofed")
			case "cookie:session":
				c = enginetest.NewCtx(t, "GET", "/v1/items", "Cookie", "session="+tok)
			default:
				c = enginetest.NewCtx(t, "GET", "/v1/items?access_token="+tok)
			}
			if f.OnRequest(c) != engine.Continue {
				t.Fatalf("refused: %v", c.Failure)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if f.OnRequest(c) != engine.Continue {
					t.Fatal("refused")
				}
			})
			if allocs != 0 {
				t.Errorf("cached path allocates %v per request, want 0", allocs)
			}
			if got := string(c.Request.Header.Peek("X-User-Id")); got != "alice" {
				t.Errorf("X-User-Id = %q", got)
			}
		})
	}
}
