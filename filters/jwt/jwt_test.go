package jwt

import (
	"crypto/elliptic"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// TestAlgorithms verifies a token of every supported algorithm with a key generated here, from
// each kind of key source, and refuses the same token signed by another key of the same family.
func TestAlgorithms(t *testing.T) {
	type tc struct {
		alg          string
		key, other   any
		secretConfig bool
	}
	cases := []tc{
		{alg: "HS256", key: hmacSecret(32), other: hmacSecret(32), secretConfig: true},
		{alg: "HS384", key: hmacSecret(48), other: hmacSecret(48), secretConfig: true},
		{alg: "HS512", key: hmacSecret(64), other: hmacSecret(64), secretConfig: true},
	}
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} {
		cases = append(cases, tc{alg: alg, key: rsaKey(t, 0), other: rsaKey(t, 1)})
	}
	for alg, curve := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
		cases = append(cases, tc{alg: alg, key: ecKey(t, curve), other: ecKey(t, curve)})
	}
	cases = append(cases, tc{alg: "EdDSA", key: edKey(t), other: edKey(t)})

	for _, c := range cases {
		sources := map[string]func(dir string, cfg *Config){}
		if c.secretConfig {
			sources["hmac_secret"] = func(_ string, cfg *Config) { cfg.HMACSecret = string(c.key.([]byte)) }
		} else {
			sources["public_key_file"] = func(dir string, cfg *Config) { cfg.PublicKeyFile = pubPEM(t, dir, "pub.pem", c.key) }
			sources["jwks_file"] = func(dir string, cfg *Config) {
				writeFile(t, dir, "jwks.json", jwksJSON(t, jwksKey{kid: "k1", alg: c.alg, key: c.key}))
				cfg.JWKSFile = "jwks.json"
			}
		}
		for srcName, src := range sources {
			t.Run(c.alg+"/"+srcName, func(t *testing.T) {
				dir := t.TempDir()
				cfg := config(t, func(cfg *Config) {
					src(dir, cfg)
					cfg.Algorithms = []string{c.alg}
					cfg.Issuer = "https://auth.example.com/"
					cfg.Audiences = []string{"catalog"}
				})
				f := build(t, cfg, dir, options{})
				tok := mint(t, c.alg, c.key, "k1", claimsFor("alice", nil))
				ctx, v := run(t, f, bearer(tok)...)
				if v != engine.Continue {
					t.Fatalf("valid %s token refused: %d %v", c.alg, ctx.Response.StatusCode(), ctx.Failure)
				}
				cl, ok := engine.ClaimsKey.Get(ctx)
				if !ok || cl["sub"] != "alice" {
					t.Fatalf("claims = %v, %v; want sub alice", cl, ok)
				}
				forged := mint(t, c.alg, c.other, "k1", claimsFor("alice", nil))
				ctx, v = run(t, f, bearer(forged)...)
				if v != engine.Respond || ctx.Response.StatusCode() != 401 || !errors.Is(ctx.Failure, ErrSignature) {
					t.Fatalf("token from another %s key: verdict %v status %d failure %v; want 401 invalid signature", c.alg, v, ctx.Response.StatusCode(), ctx.Failure)
				}
			})
		}
	}
}

func TestMissingTokenChallenge(t *testing.T) {
	f := build(t, config(t, func(c *Config) { c.HMACSecret = string(hmacSecret(32)) }), t.TempDir(), options{})
	for name, hdrs := range map[string][]string{
		"none":         nil,
		"basic":        {"Authorization", "Basic dXNlcjpwYXNz"},
		"empty bearer": {"Authorization", "Bearer   "},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, v := run(t, f, hdrs...)
			if v != engine.Respond || ctx.Response.StatusCode() != 401 {
				t.Fatalf("verdict %v status %d, want 401", v, ctx.Response.StatusCode())
			}
			if got := string(ctx.Response.Header.Peek("WWW-Authenticate")); got != `Bearer realm="api"` {
				t.Errorf("WWW-Authenticate = %q, want %q (no error code when no token was sent, RFC 6750 §3.1)", got, `Bearer realm="api"`)
			}
		})
	}
}

func TestInvalidTokenChallenge(t *testing.T) {
	secret := hmacSecret(32)
	f := build(t, config(t, func(c *Config) { c.HMACSecret = string(secret) }), t.TempDir(), options{})
	tok := mint(t, "HS256", secret, "", claimsFor("alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
	ctx, _ := run(t, f, bearer(tok)...)
	want := `Bearer realm="api", error="invalid_token", error_description="token expired"`
	if got := string(ctx.Response.Header.Peek("WWW-Authenticate")); got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	body := string(ctx.Response.Body())
	if strings.Contains(body, tok) || strings.Contains(body, "expired") || body != "Unauthorized\n" {
		t.Errorf("body = %q: want the short standard body, never the token or the reason", body)
	}
}

func TestTokenSources(t *testing.T) {
	secret := hmacSecret(32)
	f := build(t, config(t, func(c *Config) {
		c.HMACSecret = string(secret)
		c.From = []string{"header:X-Token", "cookie:session", "query:access_token"}
	}), t.TempDir(), options{noCache: true})
	good := mint(t, "HS256", secret, "", claimsFor("alice", nil))
	bad := mint(t, "HS256", hmacSecret(32), "", claimsFor("mallory", nil))
	cases := []struct {
		name    string
		uri     string
		headers []string
		want    int // 0 = passes
	}{
		{"header raw", "/", []string{"X-Token", good}, 0},
		{"header bearer", "/", []string{"X-Token", "bearer " + good}, 0},
		{"cookie", "/", []string{"Cookie", "theme=dark; session=" + good}, 0},
		{"query", "/?access_token=" + good, nil, 0},
		{"first found wins", "/?access_token=" + good, []string{"Cookie", "session=" + bad}, 401},
		{"header before query", "/?access_token=" + bad, []string{"X-Token", good}, 0},
		{"authorization not a source", "/", bearer(good), 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, v := runURI(t, f, c.uri, c.headers...)
			if c.want == 0 && v != engine.Continue {
				t.Fatalf("refused: %d %v", ctx.Response.StatusCode(), ctx.Failure)
			}
			if c.want != 0 && ctx.Response.StatusCode() != c.want {
				t.Fatalf("status %d, want %d", ctx.Response.StatusCode(), c.want)
			}
		})
	}
}

func TestForwardClaims(t *testing.T) {
	secret := hmacSecret(32)
	f := build(t, config(t, func(c *Config) {
		c.HMACSecret = string(secret)
		c.ForwardClaims = map[string]string{
			"sub": "X-User-Id", "scope": "X-Scopes", "realm.roles": "X-Roles", "evil": "X-Evil", "absent": "X-Absent",
		}
	}), t.TempDir(), options{})
	tok := mint(t, "HS256", secret, "", claimsFor("alice", map[string]any{
		"scope": "read write",
		"realm": map[string]any{"roles": []any{"admin", "ops"}},
		"evil":  "x\r\nX-Injected: 1",
	}))
	for round := range 2 { // the second round is served from the cache
		ctx, v := run(t, f, append(bearer(tok),
			"X-User-Id", "spoofed", "X-Absent", "spoofed", "X-Evil", "spoofed", "X-Roles", "spoofed")...)
		if v != engine.Continue {
			t.Fatalf("round %d: refused: %v", round, ctx.Failure)
		}
		h := &ctx.Request.Header
		for name, want := range map[string]string{"X-User-Id": "alice", "X-Scopes": "read write", "X-Roles": "admin,ops", "X-Evil": "", "X-Absent": "", "X-Injected": ""} {
			if got := string(h.Peek(name)); got != want {
				t.Errorf("round %d: %s = %q, want %q", round, name, got, want)
			}
			if n := len(h.PeekAll(name)); want != "" && n != 1 {
				t.Errorf("round %d: %d %s headers, want 1", round, n, name)
			}
		}
	}
	// A request without a token is refused, and the spoofed headers are gone regardless.
	ctx, _ := run(t, f, "X-User-Id", "spoofed")
	if got := ctx.Request.Header.Peek("X-User-Id"); len(got) != 0 {
		t.Errorf("spoofed X-User-Id kept on a refused request: %q", got)
	}
}

func TestClaimsLeewayAndClock(t *testing.T) {
	secret := hmacSecret(32)
	now := time.Unix(1_800_000_000, 0)
	clock := now
	f := build(t, config(t, func(c *Config) {
		c.HMACSecret = string(secret)
		c.Leeway = engine.Duration(30 * time.Second)
	}), t.TempDir(), options{now: func() time.Time { return clock }})
	exp := now.Unix() + 60
	tok := mint(t, "HS256", secret, "", map[string]any{"sub": "a", "exp": exp, "nbf": now.Unix() + 20, "iat": now.Unix() + 20})
	cases := []struct {
		at   time.Time
		want error
	}{
		{now, nil},                              // nbf and iat 20s ahead: within the 30s leeway
		{now.Add(89 * time.Second), nil},        // exp+29s: still within leeway (and from the cache)
		{now.Add(90 * time.Second), ErrExpired}, // exp+30s: expired, even though cached
		{now.Add(-20 * time.Second), ErrNotYetValid},
	}
	for _, c := range cases {
		clock = c.at
		ctx, v := run(t, f, bearer(tok)...)
		if c.want == nil && v != engine.Continue {
			t.Errorf("at %v: refused: %v", c.at.Sub(now), ctx.Failure)
		}
		if c.want != nil && !errors.Is(ctx.Failure, c.want) {
			t.Errorf("at %v: failure %v, want %v", c.at.Sub(now), ctx.Failure, c.want)
		}
	}
}

func TestAudienceAndIssuer(t *testing.T) {
	secret := hmacSecret(32)
	f := build(t, config(t, func(c *Config) {
		c.HMACSecret = string(secret)
		c.Issuer = "https://auth.example.com/"
		c.Audiences = []string{"catalog", "orders"}
	}), t.TempDir(), options{noCache: true})
	cases := []struct {
		name  string
		extra map[string]any
		want  error
	}{
		{"aud string", map[string]any{"aud": "orders"}, nil},
		{"aud array any-of", map[string]any{"aud": []any{"billing", "catalog"}}, nil},
		{"aud array none", map[string]any{"aud": []any{"billing", "search"}}, ErrAudience},
		{"aud missing", map[string]any{"aud": nil}, ErrAudience},
		{"aud number", map[string]any{"aud": 7}, ErrAudience},
		{"iss trailing slash differs", map[string]any{"iss": "https://auth.example.com"}, ErrIssuer},
		{"iss missing", map[string]any{"iss": nil}, ErrIssuer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, v := run(t, f, bearer(mint(t, "HS256", secret, "", claimsFor("a", c.extra)))...)
			if c.want == nil && v != engine.Continue {
				t.Fatalf("refused: %v", ctx.Failure)
			}
			if c.want != nil && !errors.Is(ctx.Failure, c.want) {
				t.Fatalf("failure %v, want %v", ctx.Failure, c.want)
			}
		})
	}
}

func TestCacheRespectsKeyAndToken(t *testing.T) {
	secret := hmacSecret(32)
	f := build(t, config(t, func(c *Config) { c.HMACSecret = string(secret) }), t.TempDir(), options{})
	tok := mint(t, "HS256", secret, "", claimsFor("alice", nil))
	for range 3 {
		if ctx, v := run(t, f, bearer(tok)...); v != engine.Continue {
			t.Fatalf("refused: %v", ctx.Failure)
		}
	}
	if n := f.cache.len(); n != 1 {
		t.Fatalf("cache holds %d entries after one token three times, want 1", n)
	}
	// Same token with one signature character changed: a different token, not a cache hit.
	b := []byte(tok)
	i := strings.LastIndexByte(tok, '.') + 3
	b[i] ^= 0x01
	if ctx, _ := run(t, f, bearer(string(b))...); ctx.Response.StatusCode() != 401 {
		t.Fatalf("altered token: status %d, want 401", ctx.Response.StatusCode())
	}
}

func TestConfigValidate(t *testing.T) {
	long := strings.Repeat("k", 32)
	cases := []struct {
		name  string
		mut   func(c *Config)
		field string
	}{
		{"no source", func(c *Config) {}, "jwks_url"},
		{"two sources", func(c *Config) { c.HMACSecret = long; c.JWKSFile = "k.json" }, "hmac_secret"},
		{"alg none", func(c *Config) { c.HMACSecret = long; c.Algorithms = []string{"none"} }, "algorithms"},
		{"unknown alg", func(c *Config) { c.JWKSFile = "k.json"; c.Algorithms = []string{"RS1024"} }, "algorithms"},
		{"short secret", func(c *Config) { c.HMACSecret = "short" }, "hmac_secret"},
		{"HS512 secret too short", func(c *Config) { c.HMACSecret = long; c.Algorithms = []string{"HS512"} }, "hmac_secret"},
		{"RS256 with secret", func(c *Config) { c.HMACSecret = long; c.Algorithms = []string{"RS256"} }, "algorithms"},
		{"HS256 with public key", func(c *Config) { c.PublicKeyFile = "p.pem"; c.Algorithms = []string{"HS256"} }, "algorithms"},
		{"HS256 with jwks_url", func(c *Config) { c.JWKSURL = "https://x/jwks"; c.Algorithms = []string{"HS256"} }, "algorithms"},
		{"bad url", func(c *Config) { c.JWKSURL = "ftp://x/jwks" }, "jwks_url"},
		{"refresh too fast", func(c *Config) { c.JWKSURL = "https://x/"; c.JWKSRefresh = engine.Duration(time.Millisecond) }, "jwks_refresh"},
		{"negative leeway", func(c *Config) { c.HMACSecret = long; c.Leeway = -1 }, "leeway"},
		{"bad source", func(c *Config) { c.HMACSecret = long; c.From = []string{"body:token"} }, "from"},
		{"no sources", func(c *Config) { c.HMACSecret = long; c.From = nil }, "from"},
		{"bad forward header", func(c *Config) { c.HMACSecret = long; c.ForwardClaims = map[string]string{"sub": "X User"} }, "forward_claims"},
		{"forward header is the token source", func(c *Config) {
			c.HMACSecret = long
			c.From = []string{"header:X-Token"}
			c.ForwardClaims = map[string]string{"sub": "x-token"}
		}, "forward_claims"},
		{"reserved forward header", func(c *Config) { c.HMACSecret = long; c.ForwardClaims = map[string]string{"sub": "Host"} }, "forward_claims"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := &Config{}
			cfg.SetDefaults()
			c.mut(cfg)
			errs := engine.FieldErrors(cfg.Validate())
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			fe, ok := engine.AsFieldError(errs[0])
			if !ok || fe.Field != c.field {
				t.Fatalf("error %v, want one on %s", errs[0], c.field)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	ec := ecKey(t, elliptic.P256())
	pubPEM(t, dir, "ec.pem", ec)
	writeFile(t, dir, "garbage.pem", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	writeFile(t, dir, "empty.json", []byte(`{"keys":[]}`))
	cases := []struct {
		name string
		mut  func(c *Config)
		want string
	}{
		{"missing file", func(c *Config) { c.PublicKeyFile = "nope.pem" }, "nope.pem"},
		{"garbage PEM", func(c *Config) { c.PublicKeyFile = "garbage.pem" }, "garbage.pem"},
		{"key cannot verify listed alg", func(c *Config) { c.PublicKeyFile = "ec.pem"; c.Algorithms = []string{"ES384"} }, "can verify none"},
		{"empty JWKS", func(c *Config) { c.JWKSFile = "empty.json" }, "no usable signing key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newFilter(config(t, c.mut), testEnv(t, dir), options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, c.want)
			}
		})
	}
	// Defaults follow the key: an EC P-256 public key accepts ES256.
	cfg := config(t, func(c *Config) { c.PublicKeyFile = "ec.pem" })
	if _, err := newFilter(cfg, testEnv(t, dir), options{}); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Algorithms) != 1 || cfg.Algorithms[0] != "ES256" {
		t.Errorf("default algorithms for a P-256 key = %v, want [ES256]", cfg.Algorithms)
	}
}

func TestPrivateKeyFileRefused(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "priv.pem", privPEM(t, ecKey(t, elliptic.P256())))
	_, err := newFilter(config(t, func(c *Config) { c.PublicKeyFile = "priv.pem" }), testEnv(t, dir), options{})
	if err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("err = %v, want a refusal of the private key", err)
	}
}

func TestMintRefusesMismatches(t *testing.T) {
	cases := []struct {
		alg string
		key any
	}{
		{"HS256", hmacSecret(16)},
		{"ES384", ecKey(t, elliptic.P256())},
		{"RS256", ecKey(t, elliptic.P256())},
		{"EdDSA", rsaKey(t, 0)},
		{"none", hmacSecret(32)},
	}
	for _, c := range cases {
		if _, err := Mint(c.alg, c.key, "", map[string]any{}); err == nil {
			t.Errorf("Mint(%s, %T) succeeded, want an error", c.alg, c.key)
		}
	}
}
