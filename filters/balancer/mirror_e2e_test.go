package balancer_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// counterValue reads a counter of the gateway's registry by name and labels (0 when absent).
func counterValue(t *testing.T, name string, labels map[string]string) float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestMirrorDoesNotSlowClients mirrors every request to an upstream that takes 2 s: the
// clients' requests stay fast, at most max_concurrent copies are in flight and the rest are
// dropped and counted; the mirror gets the request as sent (method, path, body).
func TestMirrorDoesNotSlowClients(t *testing.T) {
	app := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("app") })
	var mirrored atomic.Int64
	var gotBody, gotPath atomic.Value
	shadow := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		mirrored.Add(1)
		gotBody.Store(string(c.PostBody()))
		gotPath.Store(string(c.Path()))
		time.Sleep(2 * time.Second)
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "app" {
  target {
    address = %q
  }
}
upstream "shadow" {
  target {
    address = %q
  }
}
pipeline "mirrored" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.app
    mirror {
      upstream       = upstream.shadow
      percent        = 100
      max_body_bytes = "1KiB"
      max_concurrent = 2
    }
  }
}
`, app, shadow))
	labels := func(result string) map[string]string {
		return map[string]string{"pipeline": "mirrored", "result": result}
	}
	sent0, dropped0, skipped0 := counterValue(t, "sluice_mirror_requests_total", labels("sent")),
		counterValue(t, "sluice_mirror_requests_total", labels("dropped")), counterValue(t, "sluice_mirror_requests_total", labels("skipped"))
	cl := gatewaytest.Client()
	const n = 20
	start := time.Now()
	for i := range n {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(gw.URL + "/orders")
		req.Header.SetMethod("POST")
		req.SetBodyString("order-1")
		t0 := time.Now()
		if err := cl.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 || string(resp.Body()) != "app" {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode(), resp.Body(), err)
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Errorf("request %d took %v: the client must not wait for the 2 s mirror", i, d)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	elapsed := time.Since(start)
	// A body over max_body_bytes is not mirrored.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(gw.URL + "/big")
	req.Header.SetMethod("POST")
	req.SetBody(make([]byte, 2048))
	if err := cl.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("/big: %d %v", resp.StatusCode(), err)
	}
	sent := counterValue(t, "sluice_mirror_requests_total", labels("sent")) - sent0
	dropped := counterValue(t, "sluice_mirror_requests_total", labels("dropped")) - dropped0
	if sent+dropped != n {
		t.Errorf("sent %v + dropped %v, want %d", sent, dropped, n)
	}
	if skipped := counterValue(t, "sluice_mirror_requests_total", labels("skipped")) - skipped0; skipped != 1 {
		t.Errorf("skipped %v, want 1 (the body over max_body_bytes)", skipped)
	}
	if elapsed < 2*time.Second && (sent > 2 || dropped < n-2) {
		t.Errorf("in %v: sent %v, dropped %v; want at most max_concurrent (2) sent", elapsed, sent, dropped)
	}
	waitFor(t, 5*time.Second, "a mirrored request", func() bool { return mirrored.Load() > 0 })
	if b, p := gotBody.Load(), gotPath.Load(); b != "order-1" || p != "/orders" {
		t.Errorf("the mirror got %v %v, want /orders with body order-1", p, b)
	}
}
