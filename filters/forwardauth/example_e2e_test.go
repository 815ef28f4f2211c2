package forwardauth_test

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/authdemo"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestForwardAuthExample serves examples/forward-auth/gateway.hcl with its service and upstream
// on test ports, and checks what its README promises.
func TestForwardAuthExample(t *testing.T) {
	src, err := os.ReadFile("../../examples/forward-auth/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: authdemo.Handler(authdemo.DefaultTokens)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	cfg := strings.Replace(string(src), "http://127.0.0.1:9100/check", "http://"+ln.Addr().String()+"/check", 1)
	cfg = strings.Replace(cfg, `"127.0.0.1:9101"`, `"`+upstreamEcho(t)+`"`, 1)
	gw := gatewaytest.Start(t, cfg)
	if r := do(t, "GET", gw.URL+"/api/items"); r.status != 401 || !strings.HasPrefix(string(r.resp.Header.Peek("WWW-Authenticate")), "Bearer") {
		t.Errorf("no token: %d %q, want 401 with a Bearer challenge", r.status, r.resp.Header.Peek("WWW-Authenticate"))
	}
	r := do(t, "GET", gw.URL+"/api/items", "Authorization", "Bearer bob-token", "X-Auth-User", "alice")
	if r.status != 200 || r.headers["X-Auth-User"] != "bob" || r.headers["X-Auth-Role"] != "reader" {
		t.Errorf("bob reading: %d as %q/%q", r.status, r.headers["X-Auth-User"], r.headers["X-Auth-Role"])
	}
	if r := do(t, "POST", gw.URL+"/api/items", "Authorization", "Bearer bob-token"); r.status != 403 {
		t.Errorf("bob writing: %d, want 403", r.status)
	}
	if r := do(t, "POST", gw.URL+"/api/items", "Authorization", "Bearer alice-token"); r.status != 200 || r.headers["X-Auth-Role"] != "admin" {
		t.Errorf("alice writing: %d as %q\n%s", r.status, r.headers["X-Auth-Role"], gw.Logs())
	}
	// The per-user limit: bob's 6th request within the second is refused.
	limited := false
	for range 10 {
		if r := do(t, "GET", gw.URL+"/api/items", "Authorization", "Bearer bob-token"); r.status == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("bob was never rate limited (5 per second)")
	}
}
