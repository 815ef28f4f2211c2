package otellog

import (
	"encoding/json"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestOutcomeFields checks the fields saying how a request ended: a request the gateway
// answered itself (a rate limit's 429) logs source "gateway" with its response flags, the
// request id, the request body's size and, with trace_headers, the client's trace context as it
// arrived, even when a later stage replaced it.
func TestOutcomeFields(t *testing.T) {
	cfg := defaults()
	cfg.TraceHeaders = true
	f, buf := newBufFilter(t, cfg)
	f.reqID, f.reqIDh = "X-Request-Id", engine.NewHeaderName("X-Request-Id")
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	c := enginetest.NewCtx(t, "POST", "/v1/items", "X-Request-Id", "req-7", "Traceparent", tp, "Tracestate", "a=1", "Host", "api.example.com:8443")
	c.Request.SetBodyString("hello")
	out := serveOne(t, f, buf, c, func(c *engine.Ctx) {
		c.Request.Header.Set("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
		c.AddFlags(engine.FlagRateLimited)
		c.Fail(429, errTest)
	})
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := map[string]any{"source": "gateway", "flags": "RL", "request_id": "req-7", "bytes_in": float64(5),
		"traceparent": tp, "tracestate": "a=1", "status": float64(429)}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v", k, rec[k], v)
		}
	}
	if th, _ := traceKey.Get(c); th != nil {
		t.Error("the kept trace headers were not given back")
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{"a.example:8080": "a.example", "a.example": "a.example", "[::1]:443": "::1", "[::1]": "::1", "": ""} {
		if got := string(hostOnly([]byte(in))); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

type testErr struct{}

func (testErr) Error() string { return "test failure" }

var errTest = testErr{}
