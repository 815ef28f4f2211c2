package wasm_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestIsolationRequestEndToEnd configures isolation = "request" in HCL on a guest that hands
// each request the token the previous one sent: behind a real gateway, with two instances,
// no client ever sees another's token.
func TestIsolationRequestEndToEnd(t *testing.T) {
	gw := gatewayWith(t, wasm.Guest(t, "leak"), `
    isolation = "request"
    timeout   = "1s"
    pool_max  = 2`, func(c *fasthttp.RequestCtx) {})
	cl := gatewaytest.Client()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for i := range 200 {
		req.SetRequestURI(gw.URL + "/")
		req.Header.Set("x-token", "client-"+strconv.Itoa(i))
		if err := cl.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode())
		}
		if prev := resp.Header.Peek("x-previous"); len(prev) != 0 {
			t.Fatalf("request %d saw another client's token %q", i, prev)
		}
	}
}

// TestIsolationWithReleaseIsDiagnostic: isolation = "request" with release_between_phases is
// a validation error pointing at the attribute.
func TestIsolationWithReleaseIsDiagnostic(t *testing.T) {
	src := `
upstream "u" {
  target {
    address = "127.0.0.1:1"
  }
}
pipeline "p" {
  match {
    path_prefix = "/"
  }
  filter "wasm" {
    module                 = "x.wasm"
    release_between_phases = true
    isolation              = "request"
  }
  balancer {
    upstream = upstream.u
  }
}
`
	_, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if !diags.HasErrors() {
		t.Fatal("no diagnostic")
	}
	found := false
	for _, d := range diags {
		if strings.Contains(d.Error(), "release_between_phases") && d.Subject != nil && d.Subject.Start.Line == 14 {
			found = true
		}
	}
	if !found {
		t.Errorf("no diagnostic on line 14 (isolation) naming release_between_phases: %v", diags)
	}
}

// TestTCKIsolation runs the http-wasm TCK checks with isolation = "request": every part of the
// ABI works when the guest restarts from its snapshot after each request.
func TestTCKIsolation(t *testing.T) {
	for _, guest := range []string{"goguest", "tck_command"} {
		t.Run(guest, func(t *testing.T) { testTCK(t, guest, `    isolation = "request"`) })
	}
}
