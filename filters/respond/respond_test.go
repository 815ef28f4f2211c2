package respond

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func TestRespond(t *testing.T) {
	cfg := &Config{}
	cfg.SetDefaults()
	cfg.Status = 503
	cfg.Body = "down for maintenance\n"
	cfg.ContentType = "text/html"
	cfg.Headers = map[string]string{"Retry-After": "120"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := New(cfg, []byte(cfg.Body))
	called := false
	c := enginetest.NewCtx(t, "GET", "/x")
	enginetest.Serve(c, func(c *engine.Ctx) { called = true; enginetest.OK(c) }, f)
	if called {
		t.Error("the request went past respond")
	}
	r := c.Response
	if r.StatusCode() != 503 || string(r.Body()) != cfg.Body || string(r.Header.ContentType()) != "text/html" || string(r.Header.Peek("Retry-After")) != "120" {
		t.Errorf("got %d %q %q %q", r.StatusCode(), r.Body(), r.Header.ContentType(), r.Header.Peek("Retry-After"))
	}
	// The response's body is a copy: changing it leaves the filter's own intact.
	r.Body()[0] = 'X'
	c2 := enginetest.NewCtx(t, "GET", "/x")
	f.OnRequest(c2)
	if string(c2.Response.Body()) != cfg.Body {
		t.Errorf("the shared body changed: %q", c2.Response.Body())
	}
}

func TestBodyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "robots.txt"), []byte("User-agent: *\nDisallow: /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := engine.NewRegistry()
	Register(r)
	k, _ := r.Filter("respond")
	cfg := k.NewConfig().(*Config)
	cfg.SetDefaults()
	cfg.BodyFile = "robots.txt"
	f, err := k.Build(cfg, &engine.BuildEnv{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := enginetest.NewCtx(t, "GET", "/robots.txt")
	f.OnRequest(c)
	if got := string(c.Response.Body()); !strings.HasPrefix(got, "User-agent") {
		t.Errorf("body %q", got)
	}
	cfg.BodyFile = "missing.txt"
	if _, err := k.Build(cfg, &engine.BuildEnv{Dir: dir}); err == nil || !strings.Contains(err.Error(), "body_file") {
		t.Errorf("missing body_file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Status: 99}, "status"},
		{Config{Status: 200, Body: "a", BodyFile: "b"}, "body_file"},
		{Config{Status: 200, Headers: map[string]string{"Content-Length": "3"}}, "headers"},
		{Config{Status: 200, Headers: map[string]string{"X": "a\r\nb"}}, "headers"},
		{Config{Status: 204, Body: "x"}, "status"},
	} {
		errs := engine.FieldErrors(tc.cfg.Validate())
		if len(errs) == 0 {
			t.Errorf("%+v: no error", tc.cfg)
			continue
		}
		if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error on %s", tc.cfg, errs, tc.field)
		}
	}
}

func TestRespondAllocs(t *testing.T) {
	cfg := &Config{Status: 200, ContentType: "text/plain", Headers: map[string]string{"Cache-Control": "no-store"}}
	f := New(cfg, []byte("ok\n"))
	c := enginetest.NewCtx(t, "GET", "/healthz")
	if allocs := testing.AllocsPerRun(1000, func() { f.OnRequest(c) }); allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

func BenchmarkRespond(b *testing.B) {
	f := New(&Config{Status: 200, ContentType: "text/plain", Headers: map[string]string{"Cache-Control": "no-store"}}, []byte("ok\n"))
	c := enginetest.NewCtx(b, "GET", "/healthz")
	b.ReportAllocs()
	for b.Loop() {
		f.OnRequest(c)
	}
}
