package otellog_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/otellog"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

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
	queued, failed := otellog.LogsOutcome(t, "queued"), otellog.LogsOutcome(t, "dropped_export_failed")
	const requests = 5
	for i := 0; i < requests; i++ {
		if s := get(t, url+"/open/x").StatusCode(); s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if q := otellog.LogsOutcome(t, "queued") - queued; q != requests {
		t.Errorf("queued grew by %v, want %d", q, requests)
	}
	deadline := time.Now().Add(10 * time.Second)
	for otellog.LogsOutcome(t, "dropped_export_failed")-failed < requests {
		if time.Now().After(deadline) {
			t.Fatalf("dropped_export_failed grew by %v, want %d", otellog.LogsOutcome(t, "dropped_export_failed")-failed, requests)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
