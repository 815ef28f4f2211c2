package headers

import (
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func testFilter() *Filter {
	return New(&Config{
		RequestSet:     map[string]string{"X-Gateway": "sluice"},
		RequestAdd:     map[string]string{"X-Trace": "b"},
		RequestRemove:  []string{"X-Debug"},
		ResponseSet:    map[string]string{"Strict-Transport-Security": "max-age=63072000"},
		ResponseAdd:    map[string]string{"X-Served-By": "sluice"},
		ResponseRemove: []string{"Server"},
	})
}

func TestHeaders(t *testing.T) {
	f := testFilter()
	c := enginetest.NewCtx(t, "GET", "/x", "X-Debug", "1", "X-Gateway", "spoofed", "X-Trace", "a")
	var seen map[string][]string
	enginetest.Serve(c, func(c *engine.Ctx) {
		seen = map[string][]string{}
		for _, k := range []string{"X-Debug", "X-Gateway", "X-Trace"} {
			for _, v := range c.Request.Header.PeekAll(k) {
				seen[k] = append(seen[k], string(v))
			}
		}
		c.Response.Header.Set("Server", "upstream/1.0")
		enginetest.OK(c)
	}, f)
	if len(seen["X-Debug"]) != 0 {
		t.Errorf("X-Debug reached the upstream: %v", seen["X-Debug"])
	}
	if got := seen["X-Gateway"]; len(got) != 1 || got[0] != "sluice" {
		t.Errorf("X-Gateway = %v, want [sluice]", got)
	}
	if got := seen["X-Trace"]; len(got) != 2 {
		t.Errorf("X-Trace = %v, want the client's value and the added one", got)
	}
	h := &c.Response.Header
	if v := h.Peek("Server"); len(v) != 0 {
		t.Errorf("Server = %q, want removed", v)
	}
	if v := string(h.Peek("Strict-Transport-Security")); v != "max-age=63072000" {
		t.Errorf("Strict-Transport-Security = %q", v)
	}
	if v := string(h.Peek("X-Served-By")); v != "sluice" {
		t.Errorf("X-Served-By = %q", v)
	}
}

func TestValidate(t *testing.T) {
	bad := &Config{RequestSet: map[string]string{"Bad Name": "x"}, ResponseAdd: map[string]string{"X": "a\nb"}}
	errs := engine.FieldErrors(bad.Validate())
	if len(errs) != 2 {
		t.Fatalf("got %d errors (%v), want 2", len(errs), errs)
	}
	if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != "request_set" {
		t.Errorf("first error %v not on request_set", errs[0])
	}
}

func TestHeadersAllocs(t *testing.T) {
	f := testFilter()
	c := enginetest.NewCtx(t, "GET", "/x", "X-Debug", "1")
	allocs := testing.AllocsPerRun(1000, func() {
		// Put back what the previous request changed, as a fresh request would have it.
		c.Request.Header.Del("X-Trace")
		c.Request.Header.Set("X-Debug", "1")
		c.Response.Header.Del("X-Served-By")
		f.OnRequest(c)
		f.OnResponse(c)
	})
	if allocs != 0 {
		t.Errorf("headers filter allocates %v per request, want 0", allocs)
	}
}

func BenchmarkHeaders(b *testing.B) {
	f := testFilter()
	c := enginetest.NewCtx(b, "GET", "/x", "X-Debug", "1")
	b.ReportAllocs()
	for b.Loop() {
		c.Request.Header.Del("X-Trace")
		c.Request.Header.Set("X-Debug", "1")
		c.Response.Header.Del("X-Served-By")
		f.OnRequest(c)
		f.OnResponse(c)
	}
}
