package balancer

import (
	"errors"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// TestCircuitOpenAllocs: a request refused by max_requests is answered 503 with the prebuilt
// error, without allocating.
func TestCircuitOpenAllocs(t *testing.T) {
	cfg := validConfig("127.0.0.1:1")
	one := 1
	cfg.CircuitBreaker = &CircuitBreakerConfig{MaxRequests: &one}
	u := buildFor(t, t.Name(), cfg, &engine.BuildEnv{})
	if !u.circuit.enter() { // the one request in progress
		t.Fatal("the first request was refused")
	}
	defer u.circuit.leave()
	c := enginetest.NewCtx(t, "GET", "/x")
	c.Pipeline = engine.NewPipeline("test", engine.MatchConfig{}, "", nil, u)
	var client fasthttp.Request
	c.Request.CopyTo(&client)
	run := func() {
		client.CopyTo(c.Request)
		c.Failure = nil
		u.Serve(c)
		if c.Response.StatusCode() != fasthttp.StatusServiceUnavailable || !errors.Is(c.Failure, errCircuitOpen) {
			t.Fatalf("%d %v, want 503 and the circuit breaker's error", c.Response.StatusCode(), c.Failure)
		}
	}
	run()
	if allocs := testing.AllocsPerRun(200, run); allocs != 0 && !raceEnabled {
		t.Errorf("a refusal allocates %v, want 0", allocs)
	}
}
