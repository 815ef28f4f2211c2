package forwardauth

import (
	"net"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// allowAll is an authorization service allowing everyone as alice.
func allowAll(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		c.Response.Header.Set("X-Auth-User", "alice")
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/check"
}

func newFilter(t testing.TB, url string, mod func(*Config)) *Filter {
	t.Helper()
	cfg := &Config{URL: url}
	cfg.SetDefaults()
	cfg.UpstreamHeaders = []string{"X-Auth-User"}
	cfg.ConsumerHeader = "X-Auth-User"
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func cached(c *Config) {
	c.CacheTTL = engine.Duration(time.Minute)
	c.CacheKey = []string{"Authorization"}
}

func TestConsumer(t *testing.T) {
	f := newFilter(t, allowAll(t), nil)
	c := enginetest.NewCtx(t, "GET", "/", "Authorization", "Bearer x")
	if v := f.OnRequest(c); v != engine.Continue {
		t.Fatalf("refused: %d %v", c.Response.StatusCode(), c.Failure)
	}
	cons, _ := engine.ConsumerKey.Get(c)
	if cons == nil || cons.ID != "alice" || cons.Method != "forward_auth" {
		t.Errorf("consumer %+v", cons)
	}
}

// TestCachedAllocs: an allowing decision from the cache costs no allocation.
func TestCachedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f := newFilter(t, allowAll(t), cached)
	c := enginetest.NewCtx(t, "GET", "/", "Authorization", "Bearer x", "X-Auth-User", "root")
	run := func() {
		c.Request.Header.Set("X-Auth-User", "root")
		if f.OnRequest(c) != engine.Continue {
			t.Fatalf("refused: %v", c.Failure)
		}
		if string(c.Request.Header.Peek("X-Auth-User")) != "alice" {
			t.Fatal("X-Auth-User not set")
		}
	}
	run()
	if allocs := testing.AllocsPerRun(1000, run); allocs != 0 {
		t.Errorf("a cached decision: %v allocations per request, want 0", allocs)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Config)
		field string
	}{
		{func(c *Config) { c.URL = "ftp://x/" }, "url"},
		{func(c *Config) { c.URL = "http://user:pw@auth/" }, "url"},
		{func(c *Config) { c.Timeout = 0 }, "timeout"},
		{func(c *Config) { c.MaxConnections = 0 }, "max_connections"},
		{func(c *Config) { c.RequestHeaders = []string{"Content-Length"} }, "request_headers"},
		{func(c *Config) { c.UpstreamHeaders = []string{"bad header"} }, "upstream_headers"},
		{func(c *Config) { c.ClientHeaders = []string{"Transfer-Encoding"} }, "client_headers"},
		{func(c *Config) { c.ConsumerHeader = "a b" }, "consumer_header"},
		{func(c *Config) { c.MaxBodyBytes = 2 << 20 }, "max_body_bytes"},
		{func(c *Config) { c.OnError = "skip" }, "on_error"},
		{func(c *Config) { c.CacheTTL = engine.Duration(time.Minute) }, "cache_key"},
		{func(c *Config) { cached(c); c.CacheKey = []string{"X-Api-Key"} }, "cache_key"},
		{func(c *Config) { c.CacheSize = 0 }, "cache_size"},
	} {
		cfg := &Config{URL: "http://127.0.0.1:9100/check"}
		cfg.SetDefaults()
		tc.mod(cfg)
		errs := engine.FieldErrors(cfg.Validate())
		if len(errs) == 0 {
			t.Errorf("%s: no error", tc.field)
			continue
		}
		if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != tc.field {
			t.Errorf("%v, want an error on %s", errs, tc.field)
		}
	}
	cfg := &Config{URL: "http://127.0.0.1:9100/check"}
	cfg.SetDefaults()
	if cfg.Warnings() != nil {
		t.Error("a warning for the defaults")
	}
	cfg.OnError = "allow"
	if fe, ok := engine.AsFieldError(cfg.Warnings()); !ok || fe.Field != "on_error" || !fe.Warning {
		t.Errorf("on_error = allow: %v, want a warning on on_error", cfg.Warnings())
	}
}

func BenchmarkForwardAuth(b *testing.B) {
	url := allowAll(b)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{{"cached", cached}, {"call", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFilter(b, url, tc.mod)
			c := enginetest.NewCtx(b, "GET", "/", "Authorization", "Bearer x")
			b.ReportAllocs()
			for b.Loop() {
				f.OnRequest(c)
			}
		})
	}
}

// TestServiceErrorPassedOn: a 5xx answer is a refusal passed to the client as it is, with a
// Failure for the log line; a redirect keeps its Location.
func TestServiceErrorPassedOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if string(c.Request.Header.Peek("Authorization")) == "" {
			c.Redirect("https://login.example/?next=1", 302)
			return
		}
		c.SetStatusCode(500)
		c.SetBodyString("auth db down")
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	f := newFilter(t, "http://"+ln.Addr().String()+"/check", nil)

	c := enginetest.NewCtx(t, "GET", "/", "Authorization", "Bearer x")
	if v := f.OnRequest(c); v != engine.Respond || c.Response.StatusCode() != 500 || string(c.Response.Body()) != "auth db down" {
		t.Errorf("a 500 answer: verdict %d, %d %q", v, c.Response.StatusCode(), c.Response.Body())
	}
	if c.Failure == nil || c.Flags&engine.FlagUnauthorized == 0 {
		t.Errorf("a 500 answer: Failure %v, flags %v; want a Failure for the log and UAEX", c.Failure, c.Flags)
	}
	c2 := enginetest.NewCtx(t, "GET", "/")
	if v := f.OnRequest(c2); v != engine.Respond || c2.Response.StatusCode() != 302 || string(c2.Response.Header.Peek("Location")) != "https://login.example/?next=1" {
		t.Errorf("a redirect: verdict %d, %d Location %q", v, c2.Response.StatusCode(), c2.Response.Header.Peek("Location"))
	}
	if c2.Failure != nil {
		t.Errorf("a redirect has a Failure: %v", c2.Failure)
	}
}

// TestCallAllocs: a call to the service allocates nothing but the consumer it names (the
// connection is pooled, the request and answer too).
func TestCallAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, tc := range []struct {
		consumer string
		max      float64
	}{{"", 0}, {"X-Auth-User", 2}} {
		f := newFilter(t, allowAll(t), func(c *Config) { c.ConsumerHeader = tc.consumer })
		c := enginetest.NewCtx(t, "GET", "/", "Authorization", "Bearer x")
		run := func() {
			if f.OnRequest(c) != engine.Continue {
				t.Fatalf("refused: %v", c.Failure)
			}
		}
		run()
		if allocs := testing.AllocsPerRun(200, run); allocs > tc.max {
			t.Errorf("consumer_header %q: %v allocations per call, want at most %v", tc.consumer, allocs, tc.max)
		}
	}
}
