package telemetry

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/otel"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// batchConfigOf is the export queue of the telemetry block; unset values (a block made in code,
// not decoded) take the defaults.
func batchConfigOf(cfg *engine.TelemetryConfig) batchConfig {
	bc := batchConfig{
		maxQueue:      engine.DefaultTelemetryQueueSize,
		maxBatch:      engine.DefaultTelemetryBatchSize,
		batchTimeout:  engine.DefaultTelemetryBatchTimeout,
		exportTimeout: engine.DefaultTelemetryExportTimeout,
		concurrency:   engine.DefaultTelemetryExportConcurrency,
	}
	if cfg == nil {
		return bc
	}
	if cfg.QueueSize > 0 {
		bc.maxQueue = cfg.QueueSize
	}
	if cfg.BatchSize > 0 {
		bc.maxBatch = min(cfg.BatchSize, bc.maxQueue)
	}
	if cfg.BatchTimeout > 0 {
		bc.batchTimeout = cfg.BatchTimeout.D()
	}
	bc.exportTimeout = exportTimeoutOf(cfg)
	if cfg.ExportConcurrency > 0 {
		bc.concurrency = cfg.ExportConcurrency
	}
	return bc
}

func exportTimeoutOf(cfg *engine.TelemetryConfig) time.Duration {
	if cfg != nil && cfg.ExportTimeout > 0 {
		return cfg.ExportTimeout.D()
	}
	return engine.DefaultTelemetryExportTimeout
}

// ExportHeaders are the headers an OTLP exporter of signal (SignalTraces, SignalLogs) sends:
// OTEL_EXPORTER_OTLP_HEADERS, then OTEL_EXPORTER_OTLP_TRACES_HEADERS or …_LOGS_HEADERS, then the
// telemetry block's headers, each overriding the one before. Nil when the block sets none: the
// exporter then reads the environment itself.
func ExportHeaders(cfg *engine.TelemetryConfig, signal string) map[string]string {
	if cfg == nil || len(cfg.Headers) == 0 {
		return nil
	}
	h := map[string]string{}
	parseOTLPHeaders(h, os.Getenv("OTEL_EXPORTER_OTLP_HEADERS"))
	parseOTLPHeaders(h, os.Getenv("OTEL_EXPORTER_OTLP_"+strings.ToUpper(signal)+"_HEADERS"))
	for k, v := range cfg.Headers {
		h[k] = v
	}
	return h
}

// parseOTLPHeaders adds the pairs of an OTEL_EXPORTER_OTLP_HEADERS value ("k1=v1,k2=v2", values
// URL-encoded) to h; malformed pairs are skipped, as the exporters themselves do.
func parseOTLPHeaders(h map[string]string, s string) {
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			continue
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		h[k] = dv
	}
}

// errorLog is where InstallErrorHandler's handler writes: the newest telemetry's logger.
var (
	errorLog     atomic.Pointer[slog.Logger]
	installOnce  sync.Once
	errorLimiter struct {
		sync.Mutex
		last       time.Time
		suppressed int
	}
)

// errorEvery is how often at most an OpenTelemetry SDK error is logged.
const errorEvery = 30 * time.Second

// InstallErrorHandler routes the OpenTelemetry SDK's internal errors to log (the gateway's
// structured log), at most one line per errorEvery with the count of those suppressed, whether
// or not tracing is on: left alone, the SDK prints each to stderr. Export failures are not among
// them: the batchers count those and report them per interval (loss.go).
func InstallErrorHandler(log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	errorLog.Store(log)
	installOnce.Do(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(handleSDKError)) })
}

func handleSDKError(err error) {
	l := &errorLimiter
	l.Lock()
	if !l.last.IsZero() && time.Since(l.last) < errorEvery {
		l.suppressed++
		l.Unlock()
		return
	}
	l.last = time.Now()
	suppressed := l.suppressed
	l.suppressed = 0
	l.Unlock()
	errorLog.Load().Warn("telemetry error", "err", errorMessage(err), "suppressed", suppressed)
}

// LogProcessor is the batcher of OTLP log records (otel_log's "otlp" output), as the log SDK's
// processor: the same queue, concurrency and loss accounting as spans.
type LogProcessor struct {
	*batcher[sdklog.Record]
}

var _ sdklog.Processor = LogProcessor{}

// DroppedClosed counts n records that came after their output was closed as dropped_shutdown:
// the log SDK drops a record emitted after its provider's shutdown without telling anyone.
func (p LogProcessor) DroppedClosed(n int) { p.loss.dropShutdown(n) }

// NewLogProcessor returns the processor that queues and exports log records to exp with the
// telemetry block's queue settings, counting them in sluice_telemetry_logs_total.
func NewLogProcessor(exp sdklog.Exporter, cfg *engine.TelemetryConfig, log *slog.Logger) LogProcessor {
	var every time.Duration
	if cfg != nil {
		every = cfg.ReportInterval.D()
	}
	return LogProcessor{newBatcher(batchConfigOf(cfg), newLossCounter(SignalLogs, log, every), exp.Export, exp.Shutdown)}
}

// Enabled accepts every record.
func (LogProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

// OnEmit queues a copy of r (the SDK reuses r after the call).
func (p LogProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	p.add(r.Clone())
	return nil
}
