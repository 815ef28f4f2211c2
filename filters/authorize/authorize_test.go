package authorize

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func testConfig() *Config {
	rule := func(methods []string, prefix string, req map[string]string) Rule {
		r := Rule{}
		r.SetDefaults()
		r.Methods = methods
		if prefix != "" {
			r.PathPrefix = prefix
		}
		r.RequireClaims = req
		return r
	}
	return &Config{Rules: []Rule{
		rule([]string{"DELETE"}, "/v1/admin/", map[string]string{"scope": "catalog:admin"}),
		rule([]string{"GET"}, "/v1/reports/", map[string]string{"realm.roles": "auditor", "tier": "1"}),
		rule(nil, "/v1/", map[string]string{"scope": "catalog:read"}),
		rule([]string{"POST"}, "/v1/orders/", map[string]string{"scope": "orders:write catalog:read", "email_verified": "true"}),
	}}
}

func TestAuthorize(t *testing.T) {
	f := New(testConfig(), "api")
	reader := engine.Claims{"sub": "r", "scope": "catalog:read"}
	admin := engine.Claims{"sub": "a", "scope": "catalog:read  catalog:admin"}
	auditor := engine.Claims{"sub": "u", "scope": "catalog:read", "realm": map[string]any{"roles": []any{"viewer", "auditor"}}, "tier": 1.0}
	writer := engine.Claims{"sub": "w", "scope": []any{"catalog:read", "orders:write"}, "email_verified": true}
	unverified := engine.Claims{"sub": "w", "scope": []any{"catalog:read", "orders:write"}, "email_verified": false}
	cases := []struct {
		name   string
		method string
		path   string
		claims engine.Claims
		want   int // 0 = passes
		rule   int // the rule expected to refuse (1-based)
	}{
		{"admin deletes", "DELETE", "/v1/admin/items/1", admin, 0, 0},
		{"reader deletes", "DELETE", "/v1/admin/items/1", reader, 403, 1},
		{"reader deletes the prefix itself without slash", "DELETE", "/v1/admin", reader, 403, 1},
		{"scope substring is not a scope", "DELETE", "/v1/admin/x", engine.Claims{"scope": "catalog:admins catalog:read"}, 403, 1},
		{"reader reads admin area", "GET", "/v1/admin/items", reader, 0, 0},
		{"no scope at all", "GET", "/v1/items", engine.Claims{"sub": "x"}, 403, 3},
		{"auditor reports", "GET", "/v1/reports/q1", auditor, 0, 0},
		{"auditor reports via HEAD", "HEAD", "/v1/reports/q1", reader, 403, 2},
		{"reader reports", "GET", "/v1/reports/q1", reader, 403, 2},
		{"array scope, bool claim", "POST", "/v1/orders/", writer, 0, 0},
		{"bool claim false", "POST", "/v1/orders/", unverified, 403, 4},
		{"outside every rule", "GET", "/healthz", engine.Claims{}, 0, 0},
		{"admin path with admin but no read scope", "DELETE", "/v1/admin/x", engine.Claims{"scope": "catalog:admin"}, 403, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := enginetest.NewCtx(t, c.method, c.path)
			engine.ClaimsKey.Set(ctx, c.claims)
			v := f.OnRequest(ctx)
			if c.want == 0 {
				if v != engine.Continue {
					t.Fatalf("refused: %d %v", ctx.Response.StatusCode(), ctx.Failure)
				}
				return
			}
			if v != engine.Respond || ctx.Response.StatusCode() != c.want {
				t.Fatalf("verdict %v status %d, want %d", v, ctx.Response.StatusCode(), c.want)
			}
			if !strings.Contains(ctx.Failure.Error(), "rule "+string(rune('0'+c.rule))+" ") {
				t.Errorf("failure %q, want rule %d", ctx.Failure, c.rule)
			}
			if body := string(ctx.Response.Body()); body != "Forbidden\n" {
				t.Errorf("body = %q", body)
			}
			ch := string(ctx.Response.Header.Peek("WWW-Authenticate"))
			if !strings.HasPrefix(ch, `Bearer realm="api", error="insufficient_scope"`) {
				t.Errorf("WWW-Authenticate = %q", ch)
			}
		})
	}
}

func TestChallengeNamesScope(t *testing.T) {
	f := New(testConfig(), "api")
	ctx := enginetest.NewCtx(t, "DELETE", "/v1/admin/x")
	engine.ClaimsKey.Set(ctx, engine.Claims{"scope": "catalog:read"})
	f.OnRequest(ctx)
	want := `Bearer realm="api", error="insufficient_scope", scope="catalog:admin"`
	if got := string(ctx.Response.Header.Peek("WWW-Authenticate")); got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
}

func TestNoClaims(t *testing.T) {
	f := New(testConfig(), "api")
	ctx := enginetest.NewCtx(t, "GET", "/v1/items")
	if v := f.OnRequest(ctx); v != engine.Respond || ctx.Response.StatusCode() != 401 {
		t.Fatalf("verdict %v status %d, want 401 when no claims were verified", v, ctx.Response.StatusCode())
	}
	// Outside every rule, a request without claims passes: authorize only restricts what it names.
	ctx = enginetest.NewCtx(t, "GET", "/public")
	if v := f.OnRequest(ctx); v != engine.Continue {
		t.Fatalf("unmatched request refused: %v", ctx.Failure)
	}
}

func TestNeedsEarlierJWT(t *testing.T) {
	cfg := testConfig()
	if _, err := build(cfg, &engine.BuildEnv{Pipeline: "api", Earlier: []string{"headers"}}); err == nil || !strings.Contains(err.Error(), `"jwt"`) {
		t.Fatalf("err = %v, want a diagnostic asking for a jwt filter", err)
	}
	if _, err := build(cfg, &engine.BuildEnv{Pipeline: "api", Earlier: []string{"headers", "jwt"}}); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		rule  Rule
		field string
	}{
		{"relative prefix", Rule{PathPrefix: "v1/", RequireClaims: map[string]string{"a": "b"}}, "path_prefix"},
		{"lower-case method", Rule{PathPrefix: "/", Methods: []string{"get"}, RequireClaims: map[string]string{"a": "b"}}, "methods"},
		{"nothing required", Rule{PathPrefix: "/"}, "require_claims"},
		{"empty value", Rule{PathPrefix: "/", RequireClaims: map[string]string{"a": "  "}}, "require_claims"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := engine.FieldErrors(c.rule.Validate())
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != c.field {
				t.Fatalf("error %v, want one on %s", errs[0], c.field)
			}
		})
	}
	if err := (&Config{}).Validate(); err == nil {
		t.Error("an authorize block without rules validated")
	}
}

func TestAuthorizeAllocs(t *testing.T) {
	f := New(testConfig(), "api")
	for _, c := range []struct {
		method, path string
		claims       engine.Claims
	}{
		{"DELETE", "/v1/admin/items/1", engine.Claims{"scope": "catalog:read catalog:admin"}},
		{"GET", "/v1/reports/q1", engine.Claims{"scope": "catalog:read", "realm": map[string]any{"roles": []any{"auditor"}}, "tier": 1.0}},
		{"POST", "/v1/orders/", engine.Claims{"scope": []any{"catalog:read", "orders:write"}, "email_verified": true}},
	} {
		ctx := enginetest.NewCtx(t, c.method, c.path)
		engine.ClaimsKey.Set(ctx, c.claims)
		allocs := testing.AllocsPerRun(1000, func() {
			if f.OnRequest(ctx) != engine.Continue {
				t.Fatalf("%s %s refused: %v", c.method, c.path, ctx.Failure)
			}
		})
		if allocs != 0 {
			t.Errorf("%s %s: %v allocations per request, want 0", c.method, c.path, allocs)
		}
	}
}

func BenchmarkAuthorize(b *testing.B) {
	f := New(testConfig(), "api")
	ctx := enginetest.NewCtx(b, "DELETE", "/v1/admin/items/1")
	engine.ClaimsKey.Set(ctx, engine.Claims{"scope": "openid profile catalog:read catalog:admin"})
	b.ReportAllocs()
	for b.Loop() {
		f.OnRequest(ctx)
	}
}

func certConfig() *Config {
	r1 := Rule{PathPrefix: "/internal/", ClientCert: &ClientCertRule{URISANs: []string{"spiffe://ex.org/ns/prod/*", "spiffe://ex.org/ns/ops/sa/admin"}}}
	r2 := Rule{PathPrefix: "/fp/", ClientCert: &ClientCertRule{Fingerprint: []string{strings.Repeat("AB:", 31) + "AB"}, DNSSANs: []string{"Billing.Internal"}}}
	r3 := Rule{PathPrefix: "/any/", ClientCert: &ClientCertRule{}}
	r4 := Rule{PathPrefix: "/subject/", ClientCert: &ClientCertRule{Subject: []string{"CN=billing,O=Ex"}}}
	return &Config{Rules: []Rule{r1, r2, r3, r4}}
}

// TestClientCertRules: client_cert conditions (one value of each listed attribute, URI SAN
// prefixes, normalized fingerprints, case-insensitive DNS names) and 403 without a certificate.
func TestClientCertRules(t *testing.T) {
	f := New(certConfig(), "api")
	prod := &engine.ClientCert{Subject: "CN=billing,O=Ex", URISANs: []string{"spiffe://ex.org/ns/prod/sa/billing"},
		DNSSANs: []string{"billing.internal"}, Fingerprint: strings.Repeat("ab", 32)}
	ops := &engine.ClientCert{Subject: "CN=ops", URISANs: []string{"spiffe://ex.org/ns/ops/sa/admin"}, Fingerprint: strings.Repeat("cd", 32)}
	dev := &engine.ClientCert{Subject: "CN=dev", URISANs: []string{"spiffe://ex.org/ns/prod-like/x"}, DNSSANs: []string{"billing.internal"}, Fingerprint: strings.Repeat("ab", 32)}
	for _, c := range []struct {
		path string
		cert *engine.ClientCert
		want engine.Verdict
	}{
		{"/internal/x", prod, engine.Continue},
		{"/internal/x", ops, engine.Continue},
		{"/internal/x", dev, engine.Respond}, // "ns/prod-like" is not under "ns/prod/"
		{"/internal/x", nil, engine.Respond},
		{"/fp/x", prod, engine.Continue},
		{"/fp/x", ops, engine.Respond},
		{"/any/x", ops, engine.Continue},
		{"/any/x", nil, engine.Respond},
		{"/subject/x", prod, engine.Continue},
		{"/subject/x", ops, engine.Respond},
		{"/public", nil, engine.Continue},
	} {
		ctx := enginetest.NewCtx(t, "GET", c.path)
		if c.cert != nil {
			engine.ClientCertKey.Set(ctx, c.cert)
		}
		if got := f.OnRequest(ctx); got != c.want {
			t.Errorf("%s with %v: verdict %v, want %v (%v)", c.path, c.cert, got, c.want, ctx.Failure)
		}
		if c.want == engine.Respond && (ctx.Response.StatusCode() != 403 || len(ctx.Response.Header.Peek("WWW-Authenticate")) != 0) {
			t.Errorf("%s: status %d, challenge %q; want 403 without a challenge", c.path, ctx.Response.StatusCode(), ctx.Response.Header.Peek("WWW-Authenticate"))
		}
	}
	// Rules on client certificates alone need no jwt filter.
	if _, err := build(certConfig(), &engine.BuildEnv{Pipeline: "api"}); err != nil {
		t.Errorf("client_cert rules without jwt: %v", err)
	}
	if err := (&ClientCertRule{Fingerprint: []string{"abc"}}).Validate(); err == nil {
		t.Error("a short fingerprint validated")
	}
	ctx := enginetest.NewCtx(t, "GET", "/internal/x")
	engine.ClientCertKey.Set(ctx, prod)
	if allocs := testing.AllocsPerRun(1000, func() { f.OnRequest(ctx) }); allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}
