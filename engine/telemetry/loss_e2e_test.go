package telemetry_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// counterValue reads one series of a counter family from the gateway's registry (0 when absent).
func counterValue(t testing.TB, name, label, value string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// stoppedCollector is the address of a port nothing listens on: exports are refused.
func stoppedCollector(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// lossConfig is the test gateway with short export timeouts and a one-second loss report.
func lossConfig(endpoint, upstream string) string {
	return strings.Replace(config(endpoint, 1, upstream), "telemetry {", `telemetry {
  export_timeout  = "300ms"
  batch_timeout   = "20ms"
  report_interval = "1s"`, 1)
}

// Under a stopped collector (connections refused) and a hung one (accepts, never answers), the
// lost spans are counted on /metrics and the gateway log reports them per interval: one line
// with the totals, not one per failed export.
func TestLostSpansCounted(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endpoint func(*testing.T) string
	}{
		{"stopped collector", stoppedCollector},
		{"hung collector", blackhole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
			var logs enginetest.LogBuffer
			gw := startWithTelemetryLog(t, lossConfig(tc.endpoint(t), up), slog.New(slog.NewTextHandler(&logs, nil)))

			const outcome = "dropped_export_failed"
			failedBefore := counterValue(t, "sluice_telemetry_spans_total", "outcome", outcome)
			queuedBefore := counterValue(t, "sluice_telemetry_spans_total", "outcome", "queued")
			failuresBefore := counterValue(t, "sluice_telemetry_export_failures_total", "signal", "traces")
			const requests = 20
			for i := 0; i < requests; i++ {
				if s := do(t, gw.URL+"/v1/lost").StatusCode(); s != 200 {
					t.Fatalf("status %d: a collector that is down must not affect requests", s)
				}
			}
			// Each request makes a server span, two filter-phase spans and a client span.
			deadline := time.Now().Add(15 * time.Second)
			for counterValue(t, "sluice_telemetry_spans_total", "outcome", outcome)-failedBefore < 4*requests {
				if time.Now().After(deadline) {
					t.Fatalf("dropped_export_failed grew by %v, want %d", counterValue(t, "sluice_telemetry_spans_total", "outcome", outcome)-failedBefore, 4*requests)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if q := counterValue(t, "sluice_telemetry_spans_total", "outcome", "queued") - queuedBefore; q < 4*requests {
				t.Errorf("queued grew by %v, want at least %d", q, 4*requests)
			}
			if f := counterValue(t, "sluice_telemetry_export_failures_total", "signal", "traces") - failuresBefore; f < 1 {
				t.Errorf("export failures grew by %v, want at least 1", f)
			}
			for !strings.Contains(logs.String(), "msg=\"telemetry lost\"") {
				if time.Now().After(deadline) {
					t.Fatalf("no loss report in the log:\n%s", logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			var lines []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "telemetry lost") {
					lines = append(lines, l)
				}
			}
			// Several batches failed (the batch timeout is 20 ms); the interval has one line.
			if len(lines) > 3 {
				t.Errorf("%d loss lines within a few seconds, want one per interval:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			if l := lines[0]; !strings.Contains(l, "signal=traces") || !strings.Contains(l, "dropped_export_failed=") || !strings.Contains(l, "last_error=") {
				t.Errorf("loss line %q lacks the signal, the count or the error", l)
			}
			if strings.Contains(logs.String(), "msg=\"telemetry error\"") {
				t.Error("export errors are also logged one by one")
			}
		})
	}
}

// Spans still queued when the shutdown deadline passes are counted as dropped_shutdown and
// reported.
func TestLostSpansAtShutdown(t *testing.T) {
	up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
	var logs enginetest.LogBuffer
	src := strings.Replace(lossConfig(blackhole(t), up), `export_timeout  = "300ms"`, `export_timeout = "1m"`, 1)
	gw := startWithTelemetryLog(t, src, slog.New(slog.NewTextHandler(&logs, nil)))
	before := counterValue(t, "sluice_telemetry_spans_total", "outcome", "dropped_shutdown")
	for i := 0; i < 5; i++ {
		do(t, gw.URL+"/v1/x")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = gw.Tel.Shutdown(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v with a 300ms deadline", d)
	}
	if got := counterValue(t, "sluice_telemetry_spans_total", "outcome", "dropped_shutdown") - before; got < 20 {
		t.Errorf("dropped_shutdown grew by %v, want the 20 spans of 5 requests", got)
	}
	if !strings.Contains(logs.String(), "dropped_shutdown=") {
		t.Errorf("no loss report at shutdown:\n%s", logs.String())
	}
}
