package telemetry_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
)

// requestsTotal reads sluice_requests_total{pipeline, status_class}.
func requestsTotal(t *testing.T, pipeline, class string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0 // over the other labels (method, code, source)
	for _, mf := range mfs {
		if mf.GetName() != "sluice_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["pipeline"] == pipeline && labels["code_class"] == class {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestRoutedRequestNamesServingPipeline: after a route terminal hands a request to another
// pipeline, the server span, the request metrics and otel_log name the pipeline that served it,
// and keep the one it entered by.
func TestRoutedRequestNamesServingPipeline(t *testing.T) {
	rcv := startReceiver(t)
	rec := &recorder{}
	up := gatewaytest.Upstream(t, rec.handler(200))
	logFile := filepath.Join(t.TempDir(), "access.log")
	gw := startWithTelemetry(t, fmt.Sprintf(`
telemetry {
  service_name = "sluice-test"
  traces {
    exporter     = "otlp"
    endpoint     = %q
    sample_ratio = 1
  }
}
upstream "backend" {
  target {
    address = %q
  }
}
pipeline "front" {
  match {
    path_prefix = "/shop/"
  }
  filter "otel_log" {
    output = %q
  }
  filter "headers" {
    request_set = { "X-Variant" = "b" }
  }
  route {}
}
pipeline "variant-b" {
  match {
    path_prefix = "/shop/"
    routed_only = true
    header "x-variant" {
      exact = "b"
    }
  }
  balancer {
    upstream = upstream.backend
  }
}
`, rcv.Endpoint, up, logFile))
	served0, front0 := requestsTotal(t, "variant-b", "2xx"), requestsTotal(t, "front", "2xx")
	if resp := do(t, gw.URL+"/shop/cart"); resp.StatusCode() != 200 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	if got := requestsTotal(t, "variant-b", "2xx") - served0; got != 1 {
		t.Errorf("sluice_requests_total{pipeline=variant-b} rose by %v, want 1", got)
	}
	if got := requestsTotal(t, "front", "2xx") - front0; got != 0 {
		t.Errorf("sluice_requests_total{pipeline=front} rose by %v, want 0 (the entry pipeline did not serve it)", got)
	}
	if err := gw.Tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := rcv.WaitSpans(5*time.Second, func(s []otlpreceiver.Span) bool { _, ok := serverSpan(s); return ok })
	if err != nil {
		t.Fatalf("no server span: %v", err)
	}
	srv, _ := serverSpan(spans)
	if srv.Name != "GET variant-b" || srv.Attributes["http.route"] != "variant-b" || srv.Attributes["sluice.entry_pipeline"] != "front" {
		t.Errorf("server span %q, http.route %v, sluice.entry_pipeline %v; want GET variant-b, variant-b, front",
			srv.Name, srv.Attributes["http.route"], srv.Attributes["sluice.entry_pipeline"])
	}
	var line string
	deadline := time.Now().Add(5 * time.Second)
	for line == "" && time.Now().Before(deadline) {
		b, _ := os.ReadFile(logFile)
		line = strings.TrimSpace(string(b))
		if line == "" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !strings.Contains(line, `"pipeline":"variant-b"`) || !strings.Contains(line, `"entry_pipeline":"front"`) {
		t.Errorf("otel_log line %s\nwant pipeline variant-b and entry_pipeline front", line)
	}
}
