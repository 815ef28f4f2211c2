package balancer_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestPipelineOverrides: a pipeline's balancer block shortens the upstream's request timeout and
// turns its retries off for its own requests only.
func TestPipelineOverrides(t *testing.T) {
	var bad atomic.Int64
	handler := func(c *fasthttp.RequestCtx) {
		switch string(c.Path()) {
		case "/slow":
			time.Sleep(400 * time.Millisecond)
			c.SetBodyString("slow")
		case "/flaky":
			// Every other request fails: a retry (on the same single target) succeeds.
			if bad.Add(1)%2 == 1 {
				c.SetStatusCode(503)
				return
			}
			c.SetBodyString("ok")
		}
	}
	// Two targets, so that a retry has another one to go to.
	a, b := gatewaytest.Upstream(t, handler), gatewaytest.Upstream(t, handler)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target {
    address = %[1]q
  }
  target {
    address = %[2]q
  }
  retry {
    attempts = 2
    on       = ["503"]
  }
}
upstream "u2" {
  target {
    address = %[1]q
  }
  target {
    address = %[2]q
  }
  retry {
    attempts = 2
    on       = ["503"]
  }
}
pipeline "default" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.u
  }
}
pipeline "short" {
  match {
    path_prefix = "/short/"
  }
  strip_prefix = "/short"
  balancer {
    upstream = upstream.u2
    timeouts {
      request = "100ms"
    }
    retry {
      attempts = 0
    }
  }
}
`, a, b))
	cl := gatewaytest.Client()
	start := time.Now()
	if code, _, err := get(t, cl, gw.URL+"/short/slow"); err != nil || code != 504 {
		t.Fatalf("/short/slow: %d %v, want 504 (timeouts.request = 100ms)", code, err)
	}
	if d := time.Since(start); d > 350*time.Millisecond {
		t.Errorf("/short/slow took %v: want the pipeline's 100ms timeout", d)
	}
	if code, body, err := get(t, cl, gw.URL+"/slow"); err != nil || code != 200 || string(body) != "slow" {
		t.Fatalf("/slow: %d %q %v, want 200 (the upstream's 15s timeout)", code, body, err)
	}
	bad.Store(0)
	if code, _, err := get(t, cl, gw.URL+"/short/flaky"); err != nil || code != 503 {
		t.Errorf("/short/flaky: %d %v, want 503 (retry.attempts = 0)", code, err)
	}
	bad.Store(0)
	if code, _, err := get(t, cl, gw.URL+"/flaky"); err != nil || code != 200 {
		t.Errorf("/flaky: %d %v, want 200 (the upstream's retry)", code, err)
	}
}
