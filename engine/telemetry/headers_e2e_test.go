package telemetry_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// The telemetry block's headers reach the collector, over OTEL_EXPORTER_OTLP_HEADERS where both
// name one header; the environment's other headers are sent too.
func TestExportHeaders(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-env=from%20env,x-api-key=env-value")
	got := make(chan http.Header, 10)
	var once sync.Once
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { got <- r.Header.Clone() })
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(200)
	}))
	t.Cleanup(col.Close)
	up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
	src := strings.Replace(config(col.URL, 1, up), "telemetry {", `telemetry {
  headers      = { "x-api-key" = "s3cret" }
  batch_timeout = "10ms"`, 1)
	gw := startWithTelemetry(t, src)
	do(t, gw.URL+"/v1/h")
	select {
	case h := <-got:
		if h.Get("X-Api-Key") != "s3cret" || h.Get("X-Env") != "from env" {
			t.Errorf("collector got x-api-key %q, x-env %q; want the block's s3cret and the environment's \"from env\"", h.Get("X-Api-Key"), h.Get("X-Env"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no export reached the collector")
	}
}
