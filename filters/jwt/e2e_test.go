package jwt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/filters/jwt"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

const secret = "e2e-secret-0123456789-abcdefghijklmnop"

// whoami is an upstream that reports the identity headers it received.
func whoami(c *fasthttp.RequestCtx) {
	fmt.Fprintf(c, "user=%s scopes=%s", c.Request.Header.Peek("X-User-Id"), c.Request.Header.Peek("X-Scopes"))
}

func token(t *testing.T, sub, scope string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.Mint("HS256", []byte(secret), "", map[string]any{
		"sub": sub, "scope": scope, "iss": "https://auth.example.com/", "aud": "catalog",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	status    int
	challenge string
	body      string
}

func send(t *testing.T, method, url, tok string, headers ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)}
}

// TestGatewayContract checks the 401/403/503 contract and the WWW-Authenticate format through a
// real gateway loaded from HCL, with a real upstream behind it.
func TestGatewayContract(t *testing.T) {
	t.Setenv("SLUICE_TEST_JWT_SECRET", secret)
	up := gatewaytest.Upstream(t, whoami)
	// A JWKS endpoint that never works: the "sso" pipeline has no keys, ever.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer broken.Close()

	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "catalog" {
  target { address = %q }
}
pipeline "api" {
  match { path_prefix = "/v1/" }
  filter "jwt" {
    issuer      = "https://auth.example.com/"
    audiences   = ["catalog"]
    hmac_secret = env("SLUICE_TEST_JWT_SECRET")
    leeway      = "5s"
    forward_claims = {
      sub   = "X-User-Id"
      scope = "X-Scopes"
    }
  }
  filter "authorize" {
    rule {
      methods        = ["DELETE"]
      path_prefix    = "/v1/admin/"
      require_claims = { scope = "catalog:admin" }
    }
  }
  balancer { upstream = upstream.catalog }
}
pipeline "sso" {
  match { path_prefix = "/sso/" }
  filter "jwt" {
    jwks_url   = %q
    algorithms = ["RS256"]
  }
  balancer { upstream = upstream.catalog }
}
`, up, broken.URL))

	reader := token(t, "demo", "catalog:read", time.Hour)
	admin := token(t, "root", "catalog:read catalog:admin", time.Hour)

	r := send(t, "GET", gw.URL+"/v1/items", "")
	if r.status != 401 || r.challenge != `Bearer realm="api"` {
		t.Errorf("no token: %d %q, want 401 Bearer realm=\"api\"", r.status, r.challenge)
	}

	expired := token(t, "demo", "catalog:read", -time.Minute)
	r = send(t, "GET", gw.URL+"/v1/items", expired)
	if r.status != 401 || r.challenge != `Bearer realm="api", error="invalid_token", error_description="token expired"` {
		t.Errorf("expired token: %d %q", r.status, r.challenge)
	}
	if strings.Contains(r.body, expired) || strings.Contains(r.body, "expired") {
		t.Errorf("401 body %q echoes the token or the reason", r.body)
	}

	r = send(t, "GET", gw.URL+"/v1/items", reader[:len(reader)-3]+"AAA")
	if r.status != 401 || !strings.Contains(r.challenge, `error="invalid_token"`) {
		t.Errorf("forged token: %d %q", r.status, r.challenge)
	}

	// Valid: the upstream sees the verified identity, never the client's spoofed one.
	for range 2 { // the second pass is served from the verified-token cache
		r = send(t, "GET", gw.URL+"/v1/items", reader, "X-User-Id", "root", "X-Scopes", "catalog:admin")
		if r.status != 200 || r.body != "user=demo scopes=catalog:read" {
			t.Errorf("valid token: %d %q", r.status, r.body)
		}
	}

	r = send(t, "DELETE", gw.URL+"/v1/admin/items/1", reader)
	if r.status != 403 || r.challenge != `Bearer realm="api", error="insufficient_scope", scope="catalog:admin"` {
		t.Errorf("reader deleting: %d %q, want 403 insufficient_scope", r.status, r.challenge)
	}
	if r.body != "Forbidden\n" {
		t.Errorf("403 body %q", r.body)
	}
	if r = send(t, "DELETE", gw.URL+"/v1/admin/items/1", admin); r.status != 200 {
		t.Errorf("admin deleting: %d %q", r.status, r.body)
	}
	// The normalized path decides: an encoded or dotted spelling of the admin area is still it.
	for _, p := range []string{"/v1/%61dmin/items/1", "/v1/x/../admin/items/1", "/v1//admin/items/1"} {
		if r = send(t, "DELETE", gw.URL+p, reader); r.status != 403 {
			t.Errorf("reader deleting via %s: %d, want 403", p, r.status)
		}
	}

	// Keys never fetched: 503, not 401, and no challenge.
	rsaTok := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.c2ln"
	r = send(t, "GET", gw.URL+"/sso/x", rsaTok)
	if r.status != 503 || r.challenge != "" {
		t.Errorf("keys unavailable: %d %q, want 503 without a challenge", r.status, r.challenge)
	}
}

// TestAuthorizeWithoutJWTIsAConfigError checks the diagnostic on an authorize filter that has no
// jwt filter before it.
func TestAuthorizeWithoutJWTIsAConfigError(t *testing.T) {
	src := `
upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  filter "authorize" {
    rule {
      path_prefix    = "/"
      require_claims = { scope = "x" }
    }
  }
  filter "jwt" {
    hmac_secret = "0123456789abcdef0123456789abcdef"
  }
  balancer { upstream = upstream.u }
}
`
	cfg, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	gw, diags := cfg.Build(engine.BuildOptions{Validating: true})
	if !diags.HasErrors() {
		gw.Close()
		t.Fatal("authorize before jwt built without a diagnostic")
	}
	if msg := diags.Error(); !strings.Contains(msg, `"jwt" filter earlier`) {
		t.Errorf("diagnostic %q does not explain the missing jwt filter", msg)
	}
}

// TestReferenceBlocks loads the jwt and authorize blocks of gateway.reference.hcl as written.
func TestReferenceBlocks(t *testing.T) {
	src := `
upstream "catalog" {
  target { address = "127.0.0.1:9" }
}
pipeline "api" {
  filter "jwt" {
    issuer     = "https://auth.example.com/"
    audiences  = ["catalog"]
    algorithms = ["RS256", "ES256", "EdDSA"]   # a token whose alg is not listed is refused
    jwks_url   = "https://auth.example.com/.well-known/jwks.json"
    jwks_refresh = "10m"
    leeway       = "30s"
    from         = ["header:Authorization", "cookie:session"]
    forward_claims = {
      sub   = "X-User-Id"
      scope = "X-Scopes"
    }
  }
  filter "authorize" {
    rule {
      methods        = ["DELETE"]
      path_prefix    = "/v1/admin/"
      require_claims = { scope = "catalog:admin" }
    }
  }
  balancer { upstream = upstream.catalog }
}
`
	cfg, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	// Validating: the JWKS URL is checked but never fetched.
	gw, diags := cfg.Build(engine.BuildOptions{Validating: true})
	if diags.HasErrors() {
		t.Fatalf("build: %v", diags)
	}
	gw.Close()
}

func TestConfigDiagnostics(t *testing.T) {
	cases := map[string]string{
		`hmac_secret = "short"`: "at least 32 bytes",
		`hmac_secret = "0123456789abcdef0123456789abcdef"
    algorithms = ["none"]`: `"none" is never accepted`,
		`public_key_file = "nope.pem"`: "nope.pem",
		`jwks_url = "ftp://x/"`:        "http:// or https://",
	}
	for body, want := range cases {
		src := fmt.Sprintf(`
upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  filter "jwt" {
    %s
  }
  balancer { upstream = upstream.u }
}
`, body)
		cfg, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
		if !diags.HasErrors() {
			var gw *engine.Gateway
			if gw, diags = cfg.Build(engine.BuildOptions{Validating: true}); !diags.HasErrors() {
				gw.Close()
				t.Errorf("%s: no diagnostic", body)
				continue
			}
		}
		if !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: diagnostics %q do not mention %q", body, diags.Error(), want)
		}
	}
}

// TestGatewayJWKS verifies ES256 tokens against a JWKS served over HTTP, through the gateway,
// with the token in a cookie.
func TestGatewayJWKS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "2026-11")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	body, _ := json.Marshal(set)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }))
	defer idp.Close()
	up := gatewaytest.Upstream(t, whoami)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "jwt" {
    jwks_url       = %q
    algorithms     = ["ES256"]
    from           = ["header:Authorization", "cookie:session"]
    forward_claims = { sub = "X-User-Id" }
  }
  balancer { upstream = upstream.u }
}
`, up, idp.URL+"/.well-known/jwks.json"))
	now := time.Now()
	tok, err := jwt.Mint("ES256", key, "2026-11", map[string]any{"sub": "carol", "exp": now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	r := send(t, "GET", gw.URL+"/x", "", "Cookie", "session="+tok)
	if r.status != 200 || !strings.HasPrefix(r.body, "user=carol ") {
		t.Errorf("cookie token via JWKS: %d %q", r.status, r.body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged, _ := jwt.Mint("ES256", other, "2026-11", map[string]any{"sub": "carol", "exp": now.Add(time.Hour).Unix()})
	if r = send(t, "GET", gw.URL+"/x", forged); r.status != 401 || !strings.Contains(r.challenge, `error_description="invalid signature"`) {
		t.Errorf("forged token: %d %q", r.status, r.challenge)
	}
}
