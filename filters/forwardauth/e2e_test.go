package forwardauth_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// authService is an authorization service on loopback that counts the requests and the
// connections it accepted, and remembers the last request's headers.
type authService struct {
	addr     string
	calls    atomic.Int64
	accepted atomic.Int64
	mu       sync.Mutex
	last     map[string]string
	delay    time.Duration
	gate     chan struct{} // when set, every answer waits for it to close
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// startAuth serves: "Bearer alice-token" → 200 with X-Auth-User: alice and X-Auth-Role: admin;
// "Bearer bob-token" → 200 for GET only, else 403; anything else → 401 with a challenge, a
// cookie and a body.
func startAuth(t *testing.T, delay time.Duration) *authService {
	t.Helper()
	s := &authService{delay: delay}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		s.calls.Add(1)
		seen := map[string]string{}
		for k, v := range c.Request.Header.All() {
			seen[string(k)] = string(v)
		}
		s.mu.Lock()
		s.last = seen
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if s.delay > 0 {
			time.Sleep(s.delay)
		}
		switch string(c.Request.Header.Peek("Authorization")) {
		case "Bearer alice-token":
			c.Response.Header.Set("X-Auth-User", "alice")
			c.Response.Header.Set("X-Auth-Role", "admin")
		case "Bearer bob-token":
			c.Response.Header.Set("X-Auth-User", "bob")
			if string(c.Request.Header.Peek("X-Forwarded-Method")) != "GET" {
				c.SetStatusCode(403)
				c.SetBodyString("bob may only read\n")
			}
		default:
			c.SetStatusCode(401)
			c.Response.Header.Set("WWW-Authenticate", `Bearer realm="demo"`)
			c.Response.Header.Set("X-Internal-Debug", "do-not-leak")
			c.Response.Header.SetCookie(cookie("login_hint", "1"))
			c.SetContentType("application/json")
			c.SetBodyString(`{"error":"login required"}`)
		}
	}}
	go func() { _ = srv.Serve(countingListener{ln, &s.accepted}) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

func cookie(k, v string) *fasthttp.Cookie {
	c := fasthttp.AcquireCookie()
	c.SetKey(k)
	c.SetValue(v)
	return c
}

func (s *authService) lastHeaders() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// upstreamEcho answers with the request headers it received, as JSON.
func upstreamEcho(t *testing.T) string {
	return gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		seen := map[string]string{}
		for k, v := range c.Request.Header.All() {
			seen[string(k)] = string(v)
		}
		b, _ := json.Marshal(seen)
		c.SetBody(b)
	})
}

func config(authURL, up, extra string) string {
	return fmt.Sprintf(`
upstream "app" {
  target {
    address = %q
  }
}
pipeline "api" {
  filter "forward_auth" {
    url              = %q
    upstream_headers = ["X-Auth-User", "X-Auth-Role"]
    consumer_header  = "X-Auth-User"
%s
  }
  balancer {
    upstream = upstream.app
  }
}
`, up, authURL, extra)
}

type result struct {
	status  int
	headers map[string]string // the upstream's view, on 200
	resp    *fasthttp.Response
}

func do(t *testing.T, method, url string, headers ...string) result {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp := new(fasthttp.Response)
	if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	r := result{status: resp.StatusCode(), resp: resp}
	if r.status == 200 {
		if err := json.Unmarshal(resp.Body(), &r.headers); err != nil {
			t.Fatalf("%v: %q", err, resp.Body())
		}
	}
	return r
}

// TestForwardAuthE2E: allowed, refused and forged requests through a real gateway.
func TestForwardAuthE2E(t *testing.T) {
	auth := startAuth(t, 0)
	gw := gatewaytest.Start(t, config("http://"+auth.addr+"/check?from=sluice", upstreamEcho(t), ""))

	r := do(t, "POST", gw.URL+"/orders/7?x=1", "Authorization", "Bearer alice-token",
		"X-Auth-User", "root", "X-Auth-Role", "superuser", "X_Auth_Role", "superuser")
	if r.status != 200 {
		t.Fatalf("alice: %d %s", r.status, r.resp.Body())
	}
	if r.headers["X-Auth-User"] != "alice" || r.headers["X-Auth-Role"] != "admin" {
		t.Errorf("the upstream got X-Auth-User %q, X-Auth-Role %q; want the service's alice and admin, never the client's", r.headers["X-Auth-User"], r.headers["X-Auth-Role"])
	}
	if _, ok := r.headers["X_auth_role"]; ok {
		t.Errorf("the client's X_Auth_Role reached the upstream: %v", r.headers)
	}
	seen := auth.lastHeaders()
	for k, want := range map[string]string{
		"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/orders/7?x=1", "X-Forwarded-Proto": "http",
		"X-Forwarded-Host": gw.Addr, "X-Forwarded-For": "127.0.0.1", "Authorization": "Bearer alice-token",
	} {
		if seen[k] != want {
			t.Errorf("the service got %s = %q, want %q", k, seen[k], want)
		}
	}
	if _, ok := seen["Content-Length"]; ok && seen["Content-Length"] != "0" {
		t.Errorf("the service was sent a body: %v", seen)
	}

	r = do(t, "GET", gw.URL+"/orders", "Authorization", "Bearer forged")
	if r.status != 401 {
		t.Fatalf("a forged token: %d, want the service's 401", r.status)
	}
	h := &r.resp.Header
	if string(h.Peek("WWW-Authenticate")) != `Bearer realm="demo"` || string(r.resp.Body()) != `{"error":"login required"}` ||
		string(h.ContentType()) != "application/json" || !strings.Contains(string(h.Peek("Set-Cookie")), "login_hint=1") {
		t.Errorf("refusal: %q %q %q %q %q", h.Peek("WWW-Authenticate"), r.resp.Body(), h.ContentType(), h.Peek("Set-Cookie"), h.String())
	}
	if v := h.Peek("X-Internal-Debug"); v != nil {
		t.Errorf("a header not in client_headers reached the client: %q", v)
	}

	if r := do(t, "DELETE", gw.URL+"/orders/7", "Authorization", "Bearer bob-token"); r.status != 403 {
		t.Errorf("bob deleting: %d, want 403", r.status)
	}
	if r := do(t, "GET", gw.URL+"/orders/7", "Authorization", "Bearer bob-token"); r.status != 200 || r.headers["X-Auth-User"] != "bob" {
		t.Errorf("bob reading: %d as %q", r.status, r.headers["X-Auth-User"])
	}
}

// TestCacheHitMakesNoCall: with cache_ttl, a repeated Authorization makes one call; another
// token makes its own; refusals are never cached.
func TestCacheHitMakesNoCall(t *testing.T) {
	auth := startAuth(t, 0)
	gw := gatewaytest.Start(t, config("http://"+auth.addr+"/check", upstreamEcho(t), `    cache_ttl = "1m"
    cache_key = ["Authorization"]`))
	for range 5 {
		r := do(t, "GET", gw.URL+"/x", "Authorization", "Bearer alice-token", "X-Auth-User", "root")
		if r.status != 200 || r.headers["X-Auth-User"] != "alice" {
			t.Fatalf("alice: %d as %q", r.status, r.headers["X-Auth-User"])
		}
	}
	if n := auth.calls.Load(); n != 1 {
		t.Errorf("5 requests with one token: %d calls to the service, want 1", n)
	}
	do(t, "GET", gw.URL+"/x", "Authorization", "Bearer bob-token")
	if n := auth.calls.Load(); n != 2 {
		t.Errorf("another token: %d calls in all, want 2", n)
	}
	for range 3 {
		if r := do(t, "GET", gw.URL+"/x", "Authorization", "Bearer nope"); r.status != 401 {
			t.Fatalf("refused token: %d", r.status)
		}
	}
	if n := auth.calls.Load(); n != 5 {
		t.Errorf("3 refused requests: %d calls in all, want 5 (refusals are not cached)", n)
	}
	// No cache-key header at all: never from the cache.
	for range 2 {
		do(t, "GET", gw.URL+"/x")
	}
	if n := auth.calls.Load(); n != 7 {
		t.Errorf("requests without Authorization: %d calls in all, want 7", n)
	}
}

// TestPooledConnections: N concurrent requests reuse at most max_connections connections.
func TestPooledConnections(t *testing.T) {
	const n, conns = 40, 4
	auth := startAuth(t, 5*time.Millisecond)
	gw := gatewaytest.Start(t, config("http://"+auth.addr+"/check", upstreamEcho(t), fmt.Sprintf("    max_connections = %d", conns)))
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := do(t, "GET", gw.URL+"/x", "Authorization", "Bearer alice-token"); r.status == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != n || auth.calls.Load() != n {
		t.Errorf("%d of %d requests passed, %d calls; want all", ok.Load(), n, auth.calls.Load())
	}
	if a := auth.accepted.Load(); a > conns {
		t.Errorf("the service accepted %d connections for %d requests, want at most max_connections = %d", a, n, conns)
	}
	// Sequential requests reuse one kept-alive connection.
	before := auth.accepted.Load()
	for range 10 {
		do(t, "GET", gw.URL+"/x", "Authorization", "Bearer alice-token")
	}
	if a := auth.accepted.Load() - before; a != 0 {
		t.Errorf("10 sequential requests opened %d new connections, want 0", a)
	}
}

// TestTimeoutDenies: a service slower than timeout gets the request refused with 503 in about
// timeout, with a log line saying why.
func TestTimeoutDenies(t *testing.T) {
	auth := startAuth(t, 0)
	gate := make(chan struct{})
	auth.mu.Lock()
	auth.gate = gate
	auth.mu.Unlock()
	defer close(gate)
	gw := gatewaytest.Start(t, config("http://"+auth.addr+"/check", upstreamEcho(t), `    timeout = "200ms"`))
	start := time.Now()
	r := do(t, "GET", gw.URL+"/x", "Authorization", "Bearer alice-token")
	if r.status != 503 {
		t.Fatalf("a slow service: %d, want 503", r.status)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the 503 took %v with timeout = 200ms", d)
	}
	if logs := gw.Logs(); !strings.Contains(logs, "asking the authorization service") || !strings.Contains(logs, "timeout") {
		t.Errorf("no log line says the service timed out:\n%s", logs)
	}
}

// TestServiceDown: nothing listening → 503 with the reason logged (deny, the default); with
// on_error = "allow" the request goes through, unauthenticated, and a warning is logged.
func TestServiceDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	up := upstreamEcho(t)
	gw := gatewaytest.Start(t, config("http://"+dead+"/check", up, ""))
	if r := do(t, "GET", gw.URL+"/x", "X-Auth-User", "root"); r.status != 503 {
		t.Fatalf("service down: %d, want 503", r.status)
	}
	if logs := gw.Logs(); !strings.Contains(logs, "asking the authorization service http://"+dead+"/check") || !strings.Contains(logs, "503") {
		t.Errorf("no log line says why:\n%s", logs)
	}
	gw2 := gatewaytest.Start(t, config("http://"+dead+"/check", up, `    on_error = "allow"`))
	r := do(t, "GET", gw2.URL+"/x", "X-Auth-User", "root")
	if r.status != 200 {
		t.Fatalf("service down, on_error = allow: %d, want 200", r.status)
	}
	if _, ok := r.headers["X-Auth-User"]; ok {
		t.Errorf("the client's X-Auth-User reached the upstream unauthenticated: %v", r.headers)
	}
	if logs := gw2.Logs(); !strings.Contains(logs, "unauthenticated") {
		t.Errorf("no warning for the request let through:\n%s", logs)
	}
}

// client is shared by the tests' requests, so that they reuse connections.
var client = gatewaytest.Client()
