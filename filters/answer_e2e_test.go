package filters_test

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestPipelinesWithoutBalancer: a configuration with no upstream at all, whose pipelines end in
// respond and redirect, loads from HCL and serves.
func TestPipelinesWithoutBalancer(t *testing.T) {
	gw := gatewaytest.Start(t, `
pipeline "health" {
  match {
    path_prefix = "/healthz"
  }
  filter "respond" {
    body = "ok\n"
    headers = { "Cache-Control" = "no-store" }
  }
}
pipeline "moved" {
  filter "headers" {
    response_set = { "X-Served-By" = "moved" }
  }
  filter "redirect" {
    status = 301
    host   = "new.example.com"
  }
}
`)
	cl := gatewaytest.Client()
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/healthz", "ok\n", 200},
		{"/old/page?x=1", "", 301},
	} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(gw.URL + tc.path)
		if err := cl.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != tc.status || tc.want != "" && string(resp.Body()) != tc.want {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode(), resp.Body(), tc.status, tc.want)
		}
		if tc.status == 301 {
			if loc := string(resp.Header.Peek("Location")); !strings.HasPrefix(loc, "http://new.example.com/old/page?x=1") {
				t.Errorf("Location %q", loc)
			}
			if got := string(resp.Header.Peek("X-Served-By")); got != "moved" {
				t.Errorf("the headers filter's response phase did not run: X-Served-By %q", got)
			}
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
