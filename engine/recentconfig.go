package engine

import (
	"errors"
	"time"
)

// RecentTracesConfig is `telemetry { recent_traces { … } }`: the in-memory ring of request
// waterfalls the dashboard shows (engine/telemetry/recent.go), kept whatever the exporter.
type RecentTracesConfig struct {
	// Size is how many waterfalls each of the three rings keeps: sampled requests, errors and
	// slow requests (so at most 3×size in memory, about 2.5 KiB each).
	Size int `hcl:"size,optional" json:"size"`
	// Slow is the duration from which a request counts as slow and is kept.
	Slow Duration `hcl:"slow,optional" json:"slow"`
	// ClientErrors keeps 4xx responses with the errors too (5xx always are).
	ClientErrors bool `hcl:"client_errors,optional" json:"client_errors"`
	// CollectorUI is a link to a trace in an external collector's UI, with {trace_id} where the
	// trace id goes ("http://127.0.0.1:16686/trace/{trace_id}"); "" for none.
	CollectorUI string `hcl:"collector_ui,optional" json:"collector_ui"`
}

// Recent-trace ring defaults and bounds.
const (
	DefaultRecentTraces = 200
	MaxRecentTraces     = 10000
	DefaultSlowRequest  = 500 * time.Millisecond
)

// SetDefaults fills the block's defaults.
func (r *RecentTracesConfig) SetDefaults() {
	r.Size = DefaultRecentTraces
	r.Slow = Duration(DefaultSlowRequest)
}

// Validate checks the block.
func (r *RecentTracesConfig) Validate() error {
	var errs []error
	if r.Size < 1 || r.Size > MaxRecentTraces {
		errs = append(errs, FieldErr("size", "must be between 1 and %d", MaxRecentTraces))
	}
	if r.Slow <= 0 {
		errs = append(errs, FieldErr("slow", "must be a positive duration"))
	}
	return errors.Join(errs...)
}
