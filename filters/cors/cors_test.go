package cors

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func build(t testing.TB, mod func(*Config)) *Filter {
	t.Helper()
	var c Config
	c.SetDefaults()
	c.AllowOrigins = []string{"https://app.example.com", "https://*.example.com"}
	c.AllowHeaders = []string{"Content-Type", "X-Request-Id"}
	if mod != nil {
		mod(&c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(&c)
}

func preflightCtx(t testing.TB, origin, method, headers string) *engine.Ctx {
	h := []string{"Origin", origin, "Access-Control-Request-Method", method}
	if headers != "" {
		h = append(h, "Access-Control-Request-Headers", headers)
	}
	return enginetest.NewCtx(t, "OPTIONS", "/api/x", h...)
}

func TestPreflight(t *testing.T) {
	f := build(t, func(c *Config) { c.AllowCredentials = true })
	for _, tc := range []struct {
		origin, method, headers string
		ok                      bool
	}{
		{"https://app.example.com", "PUT", "content-type,x-request-id", true},
		{"https://shop.example.com", "DELETE", "", true},
		{"https://app.example.com", "GET", "", true}, // safelisted methods need no listing
		{"https://app.example.com", "CONNECT", "", false},
		{"https://app.example.com", "PUT", "x-evil", false},
		{"https://app.example.com", "PUT", "content-type, x-evil", false},
		// Look-alikes of the pattern.
		{"https://app.example.evil.com", "PUT", "", false},
		{"https://app.example.com.evil.net", "PUT", "", false},
		{"https://a.b.example.com", "PUT", "", false},
		{"https://example.com", "PUT", "", false},
		{"https://.example.com", "PUT", "", false},
		{"http://app.example.com", "PUT", "", false},
		{"https://evil.com/.example.com", "PUT", "", false},
		{"https://app.example.com:8443", "PUT", "", false},
		{"null", "PUT", "", false},
	} {
		c := preflightCtx(t, tc.origin, tc.method, tc.headers)
		if v := f.OnRequest(c); v != engine.Respond {
			t.Fatalf("%+v: a preflight went on (%v)", tc, v)
		}
		acao := string(c.Response.Header.Peek("Access-Control-Allow-Origin"))
		if tc.ok {
			if c.Response.StatusCode() != 204 || acao != tc.origin || string(c.Response.Header.Peek("Access-Control-Allow-Credentials")) != "true" ||
				string(c.Response.Header.Peek("Access-Control-Allow-Methods")) != "GET, HEAD, POST, PUT, PATCH, DELETE" ||
				string(c.Response.Header.Peek("Access-Control-Allow-Headers")) != "Content-Type, X-Request-Id" ||
				string(c.Response.Header.Peek("Access-Control-Max-Age")) != "600" {
				t.Errorf("%+v: allowed preflight answered %d %q", tc, c.Response.StatusCode(), c.Response.Header.String())
			}
		} else if c.Response.StatusCode() != 403 || acao != "" || c.Response.Header.Peek("Access-Control-Allow-Methods") != nil {
			t.Errorf("%+v: refused preflight answered %d with ACAO %q", tc, c.Response.StatusCode(), acao)
		}
		if !strings.Contains(string(c.Response.Header.Peek("Vary")), "Origin") {
			t.Errorf("%+v: no Vary: Origin", tc)
		}
	}
}

func TestNullOriginOnlyWhenListed(t *testing.T) {
	star := build(t, func(c *Config) { c.AllowOrigins = []string{"*"} })
	c := preflightCtx(t, "null", "PUT", "")
	star.OnRequest(c)
	if c.Response.Header.Peek("Access-Control-Allow-Origin") != nil {
		t.Errorf(`"*" allowed the null origin`)
	}
	listed := build(t, func(c *Config) { c.AllowOrigins = []string{"null"} })
	c = preflightCtx(t, "null", "PUT", "")
	listed.OnRequest(c)
	if got := string(c.Response.Header.Peek("Access-Control-Allow-Origin")); got != "null" {
		t.Errorf("listed null: ACAO %q", got)
	}
}

func actual(t testing.TB, f *Filter, origin string, upstreamHeaders ...string) *engine.Ctx {
	c := enginetest.NewCtx(t, "GET", "/api/x", "Origin", origin)
	enginetest.Serve(c, func(c *engine.Ctx) {
		c.Response.SetStatusCode(200)
		for i := 0; i+1 < len(upstreamHeaders); i += 2 {
			c.Response.Header.Add(upstreamHeaders[i], upstreamHeaders[i+1])
		}
	}, f)
	return c
}

func TestActualRequest(t *testing.T) {
	f := build(t, func(c *Config) { c.AllowCredentials = true; c.ExposeHeaders = []string{"X-Total"} })
	c := actual(t, f, "https://app.example.com", "Access-Control-Allow-Origin", "*")
	h := &c.Response.Header
	if string(h.Peek("Access-Control-Allow-Origin")) != "https://app.example.com" || string(h.Peek("Access-Control-Allow-Credentials")) != "true" ||
		string(h.Peek("Access-Control-Expose-Headers")) != "X-Total" || string(h.Peek("Vary")) != "Origin" {
		t.Errorf("credentialed actual request: %s", h.String())
	}
	// A disallowed origin: the upstream's own fields are taken away, Vary stays.
	c = actual(t, f, "https://app.example.evil.com", "Access-Control-Allow-Origin", "*", "Access-Control-Allow-Credentials", "true")
	h = &c.Response.Header
	if h.Peek("Access-Control-Allow-Origin") != nil || h.Peek("Access-Control-Allow-Credentials") != nil || string(h.Peek("Vary")) != "Origin" {
		t.Errorf("disallowed actual request: %s", h.String())
	}
	// "*" answers "*", and still varies by Origin: the null origin gets no ACAO.
	star := build(t, func(c *Config) { c.AllowOrigins = []string{"*"} })
	c = actual(t, star, "https://any.where")
	if string(c.Response.Header.Peek("Access-Control-Allow-Origin")) != "*" || string(c.Response.Header.Peek("Vary")) != "Origin" {
		t.Errorf("star: %s", c.Response.Header.String())
	}
	c = actual(t, star, "null")
	if c.Response.Header.Peek("Access-Control-Allow-Origin") != nil || string(c.Response.Header.Peek("Vary")) != "Origin" {
		t.Errorf("star, null origin: %s", c.Response.Header.String())
	}
}

func TestPrivateNetwork(t *testing.T) {
	f := build(t, func(c *Config) { c.AllowPrivateNetwork = true })
	c := enginetest.NewCtx(t, "OPTIONS", "/", "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Private-Network", "true")
	f.OnRequest(c)
	if string(c.Response.Header.Peek("Access-Control-Allow-Private-Network")) != "true" {
		t.Errorf("no Allow-Private-Network: %s", c.Response.Header.String())
	}
	off := build(t, nil)
	c = enginetest.NewCtx(t, "OPTIONS", "/", "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Private-Network", "true")
	off.OnRequest(c)
	if c.Response.Header.Peek("Access-Control-Allow-Private-Network") != nil {
		t.Errorf("Allow-Private-Network without allow_private_network")
	}
}

func TestAnyHeaderEchoes(t *testing.T) {
	f := build(t, func(c *Config) { c.AllowHeaders = []string{"*"}; c.AllowCredentials = true })
	c := preflightCtx(t, "https://app.example.com", "PUT", "x-a, x-b")
	f.OnRequest(c)
	if got := string(c.Response.Header.Peek("Access-Control-Allow-Headers")); got != "x-a, x-b" {
		t.Errorf("Allow-Headers %q", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Config)
		field string
		msg   string
	}{
		{func(c *Config) { c.AllowOrigins = nil }, "allow_origins", "at least one"},
		{func(c *Config) { c.AllowOrigins = []string{"*"}; c.AllowCredentials = true }, "allow_origins", "allow_credentials"},
		{func(c *Config) { c.AllowOrigins = []string{"https://app.*.com"} }, "allow_origins", "first label"},
		{func(c *Config) { c.AllowOrigins = []string{"https://*.com"} }, "allow_origins", "two labels"},
		{func(c *Config) { c.AllowOrigins = []string{"https://app.example.com/"} }, "allow_origins", "no path"},
		{func(c *Config) { c.AllowOrigins = []string{"app.example.com"} }, "allow_origins", "scheme://host"},
		{func(c *Config) { c.AllowOrigins = []string{"https://App.example.com"} }, "allow_origins", "lower case"},
		{func(c *Config) { c.AllowMethods = []string{"put"} }, "allow_methods", "upper-case"},
		{func(c *Config) { c.AllowHeaders = []string{"bad header"} }, "allow_headers", "invalid"},
		{func(c *Config) { c.ExposeHeaders = []string{"a,b"} }, "expose_headers", "invalid"},
		{func(c *Config) { c.MaxAge = engine.Duration(48 * time.Hour) }, "max_age", "24h"},
	} {
		var c Config
		c.SetDefaults()
		c.AllowOrigins = []string{"https://app.example.com"}
		tc.mod(&c)
		found := false
		for _, e := range engine.FieldErrors(c.Validate()) {
			if fe, ok := engine.AsFieldError(e); ok && fe.Field == tc.field && strings.Contains(fe.Error(), tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%+v: %v, want an error on %s saying %q", c, c.Validate(), tc.field, tc.msg)
		}
	}
}

func TestCORSAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f := build(t, func(c *Config) { c.AllowCredentials = true })
	pre := preflightCtx(t, "https://shop.example.com", "PUT", "content-type")
	if n := testing.AllocsPerRun(1000, func() { f.OnRequest(pre) }); n != 0 {
		t.Errorf("preflight: %v allocations, want 0", n)
	}
	c := enginetest.NewCtx(t, "GET", "/", "Origin", "https://shop.example.com")
	if n := testing.AllocsPerRun(1000, func() {
		c.Response.Header.Reset()
		f.OnRequest(c)
		f.OnResponse(c)
	}); n != 0 {
		t.Errorf("actual request: %v allocations, want 0", n)
	}
}

func BenchmarkCORSPreflight(b *testing.B) {
	f := build(b, func(c *Config) { c.AllowCredentials = true })
	c := preflightCtx(b, "https://shop.example.com", "PUT", "content-type, x-request-id")
	b.ReportAllocs()
	for b.Loop() {
		f.OnRequest(c)
	}
}

func BenchmarkCORSActual(b *testing.B) {
	f := build(b, func(c *Config) { c.AllowCredentials = true })
	c := enginetest.NewCtx(b, "GET", "/", "Origin", "https://shop.example.com")
	b.ReportAllocs()
	for b.Loop() {
		c.Response.Header.Reset()
		f.OnRequest(c)
		f.OnResponse(c)
	}
}
