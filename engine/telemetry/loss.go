package telemetry

import (
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/engine/secret"
)

// What happens to exported telemetry, counted where each item's fate is decided (batcher.go).
var (
	spansTotal = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_telemetry_spans_total",
		Help: "Spans by outcome: queued for export, then exported, or dropped: dropped_queue_full (the export queue was full), dropped_export_failed (the collector refused or did not answer), dropped_shutdown (still queued or exporting when the shutdown deadline passed).",
	}, []string{"outcome"})
	logsTotal = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_telemetry_logs_total",
		Help: "OTLP log records (otel_log output \"otlp\") by outcome: queued, exported, dropped_queue_full, dropped_export_failed, dropped_shutdown.",
	}, []string{"outcome"})
	exportFailures = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_telemetry_export_failures_total",
		Help: "Failed OTLP export calls (each a batch, after the exporter's retries), by signal (traces, logs).",
	}, []string{"signal"})
)

// Signals, the values of the signal label and log attribute.
const (
	SignalTraces = "traces"
	SignalLogs   = "logs"
)

// lossCounter counts one signal's items by outcome, on /metrics and, per interval while losses
// happen, in one gateway log line with the interval's totals.
type lossCounter struct {
	signal string
	log    *slog.Logger
	every  time.Duration

	queued, exported                  prometheus.Counter
	queueFull, exportFail, shutdown   prometheus.Counter
	failures                          prometheus.Counter
	ivQueueFull, ivFailed, ivShutdown atomic.Uint64 // since the last report
	ivFailures, ivExported            atomic.Uint64
	lastErr                           atomic.Pointer[string]
	reportMu                          sync.Mutex
}

func newLossCounter(signal string, log *slog.Logger, every time.Duration) *lossCounter {
	vec := spansTotal
	if signal == SignalLogs {
		vec = logsTotal
	}
	if log == nil {
		log = slog.Default()
	}
	if every <= 0 {
		every = 10 * time.Second
	}
	return &lossCounter{
		signal: signal, log: log, every: every,
		queued:     vec.WithLabelValues("queued"),
		exported:   vec.WithLabelValues("exported"),
		queueFull:  vec.WithLabelValues("dropped_queue_full"),
		exportFail: vec.WithLabelValues("dropped_export_failed"),
		shutdown:   vec.WithLabelValues("dropped_shutdown"),
		failures:   exportFailures.WithLabelValues(signal),
	}
}

func (l *lossCounter) dropQueueFull() {
	l.queueFull.Inc()
	l.ivQueueFull.Add(1)
}

func (l *lossCounter) dropShutdown(n int) {
	l.shutdown.Add(float64(n))
	l.ivShutdown.Add(uint64(n))
}

func (l *lossCounter) exportFailed(n int, err error) {
	l.exportFail.Add(float64(n))
	l.failures.Inc()
	l.ivFailed.Add(uint64(n))
	l.ivFailures.Add(1)
	msg := errorMessage(err)
	l.lastErr.Store(&msg)
}

func (l *lossCounter) exportedN(n int) {
	l.exported.Add(float64(n))
	l.ivExported.Add(uint64(n))
}

// watch reports every interval until done is closed.
func (l *lossCounter) watch(done <-chan struct{}) {
	go func() {
		t := time.NewTicker(l.every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.report()
			case <-done:
				return
			}
		}
	}()
}

// report logs the interval's losses, if there were any, as one line, and starts a new interval.
func (l *lossCounter) report() {
	l.reportMu.Lock()
	defer l.reportMu.Unlock()
	full, failed, stopped := l.ivQueueFull.Swap(0), l.ivFailed.Swap(0), l.ivShutdown.Swap(0)
	failures, exported := l.ivFailures.Swap(0), l.ivExported.Swap(0)
	if full+failed+stopped+failures == 0 {
		return
	}
	attrs := []any{"signal", l.signal, "interval", l.every.String(),
		"dropped_queue_full", full, "dropped_export_failed", failed, "dropped_shutdown", stopped,
		"export_failures", failures, "exported", exported}
	if p := l.lastErr.Swap(nil); p != nil {
		attrs = append(attrs, "last_error", *p)
	}
	l.log.Warn("telemetry lost", attrs...)
}

// errorMessage is an export error as the log shows it: without the URL wrapping (the collector's
// address is in the config) and with any credential in it hidden.
func errorMessage(err error) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	return secret.Text(strings.TrimSpace(msg))
}
