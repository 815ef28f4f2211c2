package otellog_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

func logsCounter(t *testing.T, outcome string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "sluice_telemetry_logs_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "outcome" && lp.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// OTLP log records a stopped collector never received are counted as dropped_export_failed.
func TestOTLPLogsLostCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped := "http://" + ln.Addr().String()
	ln.Close()
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	src := strings.Replace(gatewayConfig(stopped, up, "otlp"), "telemetry {", `telemetry {
  export_timeout = "300ms"
  batch_timeout  = "20ms"`, 1)
	url, _ := serve(t, src, t.TempDir())
	queued, failed := logsCounter(t, "queued"), logsCounter(t, "dropped_export_failed")
	const requests = 5
	for i := 0; i < requests; i++ {
		if s := get(t, url+"/open/x").StatusCode(); s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if q := logsCounter(t, "queued") - queued; q != requests {
		t.Errorf("queued grew by %v, want %d", q, requests)
	}
	deadline := time.Now().Add(10 * time.Second)
	for logsCounter(t, "dropped_export_failed")-failed < requests {
		if time.Now().After(deadline) {
			t.Fatalf("dropped_export_failed grew by %v, want %d", logsCounter(t, "dropped_export_failed")-failed, requests)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
