package telemetry_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
)

// specConfig: pipeline "api" authenticates with jwt and runs two headers filters; pipeline
// "quiet" samples none of the traces it starts.
func specConfig(endpoint, upstream, extraTraces string) string {
	return fmt.Sprintf(`
telemetry {
  traces {
    exporter        = "otlp"
    endpoint        = %q
    sample_ratio    = 1
    response_header = "X-Trace-Id"
    server_timing   = true
%s
  }
}
upstream "backend" {
  target {
    address = %q
  }
}
pipeline "api" {
  match {
    path_prefix = "/api/"
  }
  filter "jwt" {
    hmac_secret   = %q
    trace_subject = true
  }
  filter "headers" {
    request_set = { "X-One" = "1" }
  }
  filter "headers" {
    request_set = { "X-Two" = "2" }
  }
  balancer {
    upstream = upstream.backend
  }
}
pipeline "quiet" {
  trace_sample_ratio = 0
  match {
    path_prefix = "/quiet/"
  }
  balancer {
    upstream = upstream.backend
  }
}
`, endpoint, extraTraces, upstream, hmacSecret)
}

// traceOf waits for the spans of the trace whose server span has ended.
func traceOf(t *testing.T, gw *running, rcv *otlpreceiver.Receiver, traceID string) []otlpreceiver.Span {
	t.Helper()
	if err := gw.Tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := rcv.WaitSpans(5*time.Second, func(s []otlpreceiver.Span) bool {
		return len(byKind(otlpreceiver.Trace(s, traceID), "Server")) == 1
	})
	if err != nil {
		t.Fatalf("trace %s: %v", traceID, err)
	}
	return otlpreceiver.Trace(spans, traceID)
}

func TestSpansFollowConventions(t *testing.T) {
	rcv := startReceiver(t)
	rec := &recorder{}
	up := gatewaytest.Upstream(t, rec.handler(200))
	gw := startWithTelemetry(t, specConfig(rcv.Endpoint, up, ""))

	// A filter that deliberately answers 401 does not mark its span as an error.
	resp := do(t, gw.URL+"/api/items")
	if resp.StatusCode() != 401 {
		t.Fatalf("status %d, want 401", resp.StatusCode())
	}
	spans := traceOf(t, gw, rcv, string(resp.Header.Peek("X-Trace-Id")))
	t.Logf("\n%s", otlpreceiver.FormatTree(spans))
	jwt := byName(spans, "jwt request")
	if len(jwt) != 1 {
		t.Fatalf("%d jwt request spans", len(jwt))
	}
	if jwt[0].StatusCode == "Error" || jwt[0].Attributes["error.type"] != nil {
		t.Errorf("jwt span answering 401: status %s, error.type %v; want no error", jwt[0].StatusCode, jwt[0].Attributes["error.type"])
	}
	if got := jwt[0].Attributes["sluice.jwt.outcome"]; got != "missing" {
		t.Errorf("sluice.jwt.outcome = %v, want missing", got)
	}
	if got := jwt[0].Attributes["http.response.status_code"]; got != int64(401) {
		t.Errorf("jwt span status code %v, want 401", got)
	}

	// Two filters of one kind get distinguishable spans; the server span is named by its route.
	resp = do(t, gw.URL+"/api/items", "Authorization", "Bearer "+hs256("alice"))
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	traceID := string(resp.Header.Peek("X-Trace-Id"))
	spans = traceOf(t, gw, rcv, traceID)
	srv, _ := serverSpan(spans)
	if srv.Name != "GET /api/*" || srv.Attributes["http.route"] != "/api/*" || srv.Attributes["sluice.pipeline"] != "api" {
		t.Errorf("server span %q, http.route %v, sluice.pipeline %v", srv.Name, srv.Attributes["http.route"], srv.Attributes["sluice.pipeline"])
	}
	for name, index := range map[string]int64{"headers request": 1, "headers#2 request": 2} {
		s := byName(spans, name)
		if len(s) != 1 || s[0].Attributes["sluice.filter.index"] != index {
			t.Errorf("span %q: %d found, want one with sluice.filter.index %d", name, len(s), index)
		}
	}
	if got := byName(spans, "jwt request")[0].Attributes["sluice.jwt.outcome"]; got != "valid" {
		t.Errorf("sluice.jwt.outcome = %v, want valid", got)
	}
	if got := byName(spans, "jwt request")[0].Attributes["sluice.jwt.subject"]; got != "alice" {
		t.Errorf("sluice.jwt.subject = %v, want alice (trace_subject = true)", got)
	}

	// Server-Timing carries the server span's context; the trace the gateway started has the
	// random flag.
	want := fmt.Sprintf(`trace;desc="00-%s-%s-03"`, traceID, srv.SpanID)
	if got := string(resp.Header.Peek("Server-Timing")); got != want {
		t.Errorf("Server-Timing = %q, want %q", got, want)
	}

	// A pipeline's trace_sample_ratio = 0 overrides the block's 1: its traces are not sampled,
	// and the upstream is told so (random flag set, sampled not).
	resp = do(t, gw.URL+"/quiet/x")
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	if tp, _ := rec.last(); !strings.HasSuffix(tp, "-02") {
		t.Errorf("upstream traceparent %q from an unsampled pipeline, want flags 02", tp)
	}
	quietTrace := string(resp.Header.Peek("X-Trace-Id"))
	if err := gw.Tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := otlpreceiver.Trace(rcv.Spans(), quietTrace); len(s) != 0 {
		t.Errorf("%d spans exported for a pipeline with trace_sample_ratio = 0", len(s))
	}
}

// filter_spans = false leaves the server and client spans; filter annotations go on the server
// span.
func TestFilterSpansOff(t *testing.T) {
	rcv := startReceiver(t)
	up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
	gw := startWithTelemetry(t, specConfig(rcv.Endpoint, up, "    filter_spans = false"))
	resp := do(t, gw.URL+"/api/items", "Authorization", "Bearer "+hs256("alice"))
	spans := traceOf(t, gw, rcv, string(resp.Header.Peek("X-Trace-Id")))
	if len(spans) != 2 || len(byKind(spans, "Client")) != 1 {
		t.Errorf("spans %s, want a server and a client span", otlpreceiver.FormatTree(spans))
	}
	if srv, _ := serverSpan(spans); srv.Attributes["sluice.jwt.outcome"] != "valid" {
		t.Errorf("server span sluice.jwt.outcome = %v, want valid", srv.Attributes["sluice.jwt.outcome"])
	}
}
