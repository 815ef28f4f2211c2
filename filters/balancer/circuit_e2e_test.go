package balancer_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/balancer"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// holdingUpstream answers only when release is closed, and counts the requests that arrived.
func holdingUpstream(t *testing.T) (addr string, arrived *atomic.Int64, release func()) {
	arrived = new(atomic.Int64)
	gate := make(chan struct{})
	addr = gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		arrived.Add(1)
		<-gate
		c.SetBodyString("slow")
	})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return addr, arrived, release
}

// TestCircuitBreakerMaxRequests holds max_requests requests at a slow upstream: the next ones
// are answered 503 at once, with the limit in the log and the metric, and the held ones succeed.
func TestCircuitBreakerMaxRequests(t *testing.T) {
	const limit, extra = 4, 3
	addr, arrived, release := holdingUpstream(t)
	gw := gatewaytest.Start(t, config("", []string{addr}, `
  circuit_breaker {
    max_requests = 4
  }`))
	before := balancer.CircuitOpen("u", "max_requests")
	cl := gatewaytest.Client()
	var wg sync.WaitGroup
	codes := make(chan int, limit)
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err := get(t, cl, gw.URL+"/x")
			if err != nil {
				t.Error(err)
			}
			codes <- code
		}()
	}
	waitFor(t, 5*time.Second, "the held requests to reach the upstream", func() bool { return arrived.Load() == limit })
	for range extra {
		start := time.Now()
		code, _, err := get(t, cl, gw.URL+"/x")
		if err != nil || code != fasthttp.StatusServiceUnavailable {
			t.Fatalf("a request over max_requests: %d %v, want 503", code, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the refusal took %v: want it at once", d)
		}
	}
	release()
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("a held request: %d, want 200", code)
		}
	}
	if got := arrived.Load(); got != limit {
		t.Errorf("the upstream got %d requests, want %d", got, limit)
	}
	if got := balancer.CircuitOpen("u", "max_requests") - before; got != extra {
		t.Errorf("sluice_upstream_circuit_open_total{limit=max_requests} rose by %v, want %d", got, extra)
	}
	if logs := gw.Logs(); !strings.Contains(logs, "circuit_breaker.max_requests") {
		t.Errorf("no log line names circuit_breaker.max_requests:\n%s", logs)
	}
	// The slots are given back: a request goes through again.
	if code, _, err := get(t, cl, gw.URL+"/x"); err != nil || code != 200 {
		t.Errorf("after the held requests ended: %d %v, want 200", code, err)
	}
}

// TestCircuitBreakerMaxPending fills a target's only connection slot: with max_pending = 0 the
// next request does not wait for it and is refused 503.
func TestCircuitBreakerMaxPending(t *testing.T) {
	addr, arrived, release := holdingUpstream(t)
	gw := gatewaytest.Start(t, config("", []string{addr}, `
  max_connections_per_target = 1
  circuit_breaker {
    max_pending = 0
  }`))
	before := balancer.CircuitOpen("u", "max_pending")
	cl := gatewaytest.Client()
	done := make(chan int, 1)
	go func() {
		code, _, _ := get(t, cl, gw.URL+"/x")
		done <- code
	}()
	waitFor(t, 5*time.Second, "the first request to reach the upstream", func() bool { return arrived.Load() == 1 })
	code, _, err := get(t, cl, gw.URL+"/x")
	if err != nil || code != fasthttp.StatusServiceUnavailable {
		t.Fatalf("a request with the slot taken: %d %v, want 503", code, err)
	}
	release()
	if code := <-done; code != 200 {
		t.Errorf("the first request: %d, want 200", code)
	}
	if got := balancer.CircuitOpen("u", "max_pending") - before; got < 1 {
		t.Errorf("sluice_upstream_circuit_open_total{limit=max_pending} rose by %v, want ≥ 1", got)
	}
	if logs := gw.Logs(); !strings.Contains(logs, "circuit_breaker.max_pending") {
		t.Errorf("no log line names circuit_breaker.max_pending:\n%s", logs)
	}
}

// TestCircuitBreakerMaxRetries: with max_retries = 0 a failed attempt is not retried, even
// though the retry block asks for it; with the default a retry goes to the other target.
func TestCircuitBreakerMaxRetries(t *testing.T) {
	for _, tc := range []struct {
		breaker   string
		wantCode  int
		wantOther int64
	}{
		{"circuit_breaker {\n    max_retries = 0\n  }", 503, 0},
		{"", 200, 1},
	} {
		var bad, good atomic.Int64
		badAddr := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { bad.Add(1); c.SetStatusCode(503) })
		goodAddr := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { good.Add(1); c.SetBodyString("ok") })
		gw := gatewaytest.Start(t, config("", []string{badAddr, goodAddr}, `
  policy = "round_robin"
  retry {
    attempts = 1
    on = ["503"]
  }
  `+tc.breaker))
		before := balancer.CircuitOpen("u", "max_retries")
		cl := gatewaytest.Client()
		// Round robin: one of the first two requests starts on the failing target; goodBefore
		// is what the good target had got before it.
		code, goodBefore := 0, int64(0)
		for range 2 {
			goodBefore = good.Load()
			c, _, err := get(t, cl, gw.URL+"/x")
			if err != nil {
				t.Fatal(err)
			}
			if code = c; bad.Load() == 1 {
				break
			}
		}
		if bad.Load() != 1 {
			t.Fatalf("%q: the failing target got %d requests, want 1", tc.breaker, bad.Load())
		}
		if got := good.Load() - goodBefore; got != tc.wantOther {
			t.Errorf("%q: the good target got %d retries, want %d", tc.breaker, got, tc.wantOther)
		}
		if code != tc.wantCode {
			t.Errorf("%q: status %d, want %d", tc.breaker, code, tc.wantCode)
		}
		opened := balancer.CircuitOpen("u", "max_retries") - before
		if tc.wantOther == 0 && opened != 1 {
			t.Errorf("%q: sluice_upstream_circuit_open_total{limit=max_retries} rose by %v, want 1", tc.breaker, opened)
		}
		gw.Stop(t)
	}
}

// TestCircuitBreakerSurvivesReload holds max_requests requests, reloads the unchanged
// configuration, and checks that the new upstream still counts the held requests (the next one
// is refused at once) and that their slots come back when they finish.
func TestCircuitBreakerSurvivesReload(t *testing.T) {
	const limit = 2
	addr, arrived, release := holdingUpstream(t)
	src := config("", []string{addr}, `
  circuit_breaker {
    max_requests = 2
  }`)
	gw := gatewaytest.Start(t, src)
	cl := gatewaytest.Client()
	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, err := get(t, cl, gw.URL+"/x"); err != nil || code != 200 {
				t.Errorf("a held request: %d %v, want 200", code, err)
			}
		}()
	}
	waitFor(t, 5*time.Second, "the held requests to reach the upstream", func() bool { return arrived.Load() == limit })
	drained := gw.Reload(t, src)
	before := balancer.CircuitOpen("u", "max_requests")
	if code, _, err := get(t, cl, gw.URL+"/x"); err != nil || code != fasthttp.StatusServiceUnavailable {
		t.Fatalf("after the reload, a request over max_requests: %d %v, want 503 (the held requests still count)", code, err)
	}
	if got := balancer.CircuitOpen("u", "max_requests") - before; got != 1 {
		t.Errorf("sluice_upstream_circuit_open_total{limit=max_requests} rose by %v, want 1", got)
	}
	release()
	wg.Wait()
	<-drained
	if code, _, err := get(t, cl, gw.URL+"/x"); err != nil || code != 200 {
		t.Errorf("after the held requests ended and the old configuration closed: %d %v, want 200", code, err)
	}
}
