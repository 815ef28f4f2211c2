package engine

import (
	"errors"
	"time"
)

// Defaults of the telemetry block's export settings. The queue holds about a second of spans of
// a gateway serving 4,000 sampled requests a second with four spans each (about 18 MiB when
// full), and four exports at once drain it; a full queue drops, and counts, what does not fit.
const (
	DefaultTelemetryQueueSize         = 16384
	DefaultTelemetryBatchSize         = 512
	DefaultTelemetryBatchTimeout      = time.Second
	DefaultTelemetryExportTimeout     = 10 * time.Second
	DefaultTelemetryExportConcurrency = 4
	DefaultTelemetryReportInterval    = 10 * time.Second
)

func (t *TelemetryConfig) setExportDefaults() {
	t.QueueSize = DefaultTelemetryQueueSize
	t.BatchSize = DefaultTelemetryBatchSize
	t.BatchTimeout = Duration(DefaultTelemetryBatchTimeout)
	t.ExportTimeout = Duration(DefaultTelemetryExportTimeout)
	t.ExportConcurrency = DefaultTelemetryExportConcurrency
	t.ReportInterval = Duration(DefaultTelemetryReportInterval)
}

// Validate checks the telemetry block's own attributes (traces and logs check theirs).
func (t *TelemetryConfig) Validate() error {
	var errs []error
	if t.QueueSize < 1 || t.QueueSize > 1<<22 {
		errs = append(errs, FieldErr("queue_size", "must be between 1 and 4194304"))
	}
	if t.BatchSize < 1 || t.BatchSize > t.QueueSize {
		errs = append(errs, FieldErr("batch_size", "must be between 1 and queue_size"))
	}
	if t.BatchTimeout <= 0 {
		errs = append(errs, FieldErr("batch_timeout", "must be positive"))
	}
	if t.ExportTimeout <= 0 {
		errs = append(errs, FieldErr("export_timeout", "must be positive"))
	}
	if t.ExportConcurrency < 1 || t.ExportConcurrency > 64 {
		errs = append(errs, FieldErr("export_concurrency", "must be between 1 and 64"))
	}
	if t.ReportInterval < Duration(time.Second) {
		errs = append(errs, FieldErr("report_interval", "must be at least 1s"))
	}
	for name := range t.Headers {
		if !validHeaderName(name) {
			errs = append(errs, FieldErr("headers", "invalid header name %q", name))
		}
	}
	return errors.Join(errs...)
}

// FilterSpansOn reports whether the traces block asks for a span per filter phase.
func (t *TracesConfig) FilterSpansOn() bool { return t.FilterSpans == nil || *t.FilterSpans }
