package jwt

import (
	"bytes"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// BenchmarkBenchRow is the filter as `make bench-full`'s jwt row configures it (HS256 from
// hmac_secret, issuer and audience, no forwarded claims) with the same token on every request:
// the cached path alone, with no key generation in its setup, so that its instruction count
// under callgrind is the same from run to run.
func BenchmarkBenchRow(b *testing.B) {
	secret := []byte("sluice-bench-hmac-secret-0123456789abcdef")
	cfg := config(b, func(c *Config) {
		c.HMACSecret = string(secret)
		c.Algorithms = []string{"HS256"}
		c.Issuer = "https://auth.example.com/"
		c.Audiences = []string{"catalog"}
	})
	f := build(b, cfg, b.TempDir(), options{})
	tok := mint(b, "HS256", secret, "", claimsFor("bench-user", nil))
	c := enginetest.NewCtx(b, "GET", "/", "Authorization", "Bearer "+tok)
	if f.OnRequest(c) != engine.Continue {
		b.Fatalf("token refused: %v", c.Failure)
	}
	b.ReportAllocs()
	for b.Loop() {
		if f.OnRequest(c) != engine.Continue {
			b.Fatal("refused")
		}
	}
}

func TestTrimSpaceMatchesBytes(t *testing.T) {
	for _, v := range []string{"", " ", "a", " a", "a ", "\ta\n", "abc.def.ghi", "\u00a0a", "a\u00a0", "a\u0085", "\x7fa\x7f", "é", "a b"} {
		if got, want := string(trimSpace([]byte(v))), string(bytes.TrimSpace([]byte(v))); got != want {
			t.Errorf("trimSpace(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestCutBearer(t *testing.T) {
	for v, want := range map[string]string{"Bearer abc": "abc", "bearer abc": "abc", "BEARER abc": "abc", "Basic abc": "", "Bearer": "", "Bearerxabc": ""} {
		got, ok := cutBearer([]byte(v))
		if (want != "") != ok || (ok && string(got) != want) {
			t.Errorf("cutBearer(%q) = %q, %v; want %q", v, got, ok, want)
		}
	}
}

// TestCacheSharedTail: two verified tokens whose last hashTail bytes are equal share a cache
// key; each is still served only for itself (the whole token is compared), the later one
// evicting the earlier.
func TestCacheSharedTail(t *testing.T) {
	c := newTokenCache()
	set := &keySet{}
	tail := bytes.Repeat([]byte("s"), hashTail)
	a, b := append([]byte("token-a."), tail...), append([]byte("token-b."), tail...)
	if c.key(a) != c.key(b) {
		t.Fatal("tokens sharing their tail should share a key")
	}
	now := int64(1000)
	c.put(&cacheEntry{token: a, set: set, expires: now + 10}, now)
	if c.get(b, set, now) != nil {
		t.Fatal("token b served from token a's entry")
	}
	if c.get(a, set, now) == nil {
		t.Fatal("token a not served")
	}
	c.put(&cacheEntry{token: b, set: set, expires: now + 10}, now)
	if c.get(a, set, now) != nil || c.get(b, set, now) == nil {
		t.Fatal("b should have replaced a")
	}
}
