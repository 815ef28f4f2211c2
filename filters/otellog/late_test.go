package otellog

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// TestLateRecordCounted: a record written after its output was closed (a streamed response that
// outlived its configuration's drain) is counted in sluice_otel_log_dropped_total and logged,
// not left in a buffer nobody writes.
func TestLateRecordCounted(t *testing.T) {
	var out, logged enginetest.LogBuffer
	s := newSink(&out, slog.New(slog.NewTextHandler(&logged, nil)))
	s.write([]byte("before\n"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := droppedValue(t)
	for range 3 {
		s.write([]byte("after\n"))
	}
	if got := droppedValue(t) - before; got != 3 {
		t.Errorf("sluice_otel_log_dropped_total grew by %v for 3 late records, want 3", got)
	}
	if out.String() != "before\n" {
		t.Errorf("output %q, want only the record written before the close", out.String())
	}
	s.mu.Lock()
	pending := len(s.pending)
	s.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d late bytes left pending", pending)
	}
	if n := strings.Count(logged.String(), "access log record dropped: its output was closed"); n != 1 {
		t.Errorf("%d log lines for 3 late records in one second, want 1:\n%s", n, logged.String())
	}
}

// TestLateOTLPRecordCounted: the log SDK drops a record emitted after its provider shut down
// without a word; the sink counts it as dropped_shutdown in sluice_telemetry_logs_total.
func TestLateOTLPRecordCounted(t *testing.T) {
	var logged enginetest.LogBuffer
	o, err := newOTLPSink("http://127.0.0.1:9/v1/logs", nil, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.CloseContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := LogsOutcome(t, "dropped_shutdown")
	c := enginetest.NewCtx(t, "GET", "/x")
	o.emit(c, &Filter{}, c.Start, nil, nil)
	if got := LogsOutcome(t, "dropped_shutdown") - before; got != 1 {
		t.Errorf("dropped_shutdown grew by %v for a late record, want 1", got)
	}
	if !strings.Contains(logged.String(), "its OTLP output was closed") {
		t.Errorf("no log line for the late record:\n%s", logged.String())
	}
}

// LogsOutcome reads sluice_telemetry_logs_total{outcome} (for this package's tests, both
// internal and external).
func LogsOutcome(t *testing.T, outcome string) float64 {
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

func droppedValue(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := droppedTotal.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
