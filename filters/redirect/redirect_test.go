package redirect

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func build(t testing.TB, cfg Config) *Filter {
	t.Helper()
	c := Config{}
	c.SetDefaults()
	if cfg.Status != 0 {
		c.Status = cfg.Status
	}
	c.HTTPS, c.Scheme, c.Host, c.Port, c.Path = cfg.HTTPS, cfg.Scheme, cfg.Host, cfg.Port, cfg.Path
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(&c)
}

func TestLocation(t *testing.T) {
	for _, tc := range []struct {
		cfg       Config
		uri, host string
		status    int
		want      string
	}{
		{Config{HTTPS: true}, "/a/b?x=1", "example.com:8080", 308, "https://example.com/a/b?x=1"},
		{Config{HTTPS: true, Port: 8443}, "/a", "example.com", 308, "https://example.com:8443/a"},
		{Config{Host: "new.example", Status: 301}, "/a?q", "old.example", 301, "http://new.example/a?q"},
		{Config{Path: "/maintenance", Status: 302}, "/a?q=1", "h", 302, "/maintenance?q=1"},
		{Config{Path: "/x"}, "/a", "h", 308, "/x"},
		// A path that a browser would read as another host stays a path.
		{Config{HTTPS: true}, "//evil.example/%2F", "h", 308, "https://h/evil.example/%2F"},
		{Config{Path: "/"}, "//evil.example", "h", 308, "/"},
		{Config{Host: "a.example"}, `/\evil.example`, "h", 308, "http://a.example/evil.example"},
		{Config{Path: "/x"}, "/a", "h", 308, "/x"},
		{Config{HTTPS: true}, "/a", "[::1]:80", 308, "https://[::1]/a"},
		{Config{HTTPS: true}, "/a", "bad/host", 400, ""},
	} {
		f := build(t, tc.cfg)
		c := enginetest.NewCtx(t, "GET", tc.uri, "Host", tc.host)
		if v := f.OnRequest(c); v != engine.Respond {
			t.Errorf("verdict %v", v)
		}
		if got := c.Response.StatusCode(); got != tc.status {
			t.Errorf("%+v %s: status %d, want %d", tc.cfg, tc.uri, got, tc.status)
		}
		if got := string(c.Response.Header.Peek("Location")); got != tc.want {
			t.Errorf("%+v %s: Location %q, want %q", tc.cfg, tc.uri, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
		msg   string
	}{
		{Config{Status: 200}, "status", "not a redirect"},
		{Config{Status: 308, Scheme: "htps"}, "scheme", `did you mean "https"`},
		{Config{Status: 308, Host: "a.example:80"}, "host", "port"},
		{Config{Status: 308, Path: "//evil"}, "path", "single"},
		{Config{Status: 308, Port: 70000}, "port", "range"},
		{Config{Status: 308, HTTPS: true, Scheme: "http"}, "https", "contradicts"},
	} {
		found := false
		for _, e := range engine.FieldErrors(tc.cfg.Validate()) {
			if fe, ok := engine.AsFieldError(e); ok && fe.Field == tc.field && strings.Contains(fe.Error(), tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%+v: %v, want an error on %s saying %q", tc.cfg, tc.cfg.Validate(), tc.field, tc.msg)
		}
	}
}

func TestRedirectAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f := build(t, Config{HTTPS: true})
	c := enginetest.NewCtx(t, "GET", "/a/b?x=1", "Host", "example.com")
	if allocs := testing.AllocsPerRun(1000, func() { f.OnRequest(c) }); allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

func BenchmarkRedirect(b *testing.B) {
	f := build(b, Config{HTTPS: true})
	c := enginetest.NewCtx(b, "GET", "/a/b?x=1", "Host", "example.com")
	b.ReportAllocs()
	for b.Loop() {
		f.OnRequest(c)
	}
}
