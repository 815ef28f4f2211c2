package main

import (
	"context"
	"reflect"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/telemetry"
)

// telemetryState is the running telemetry (tracing exporter, metrics observer) and the block it
// was made from. A reload that leaves the telemetry block unchanged keeps it; a changed block gets
// a new one, and the old one is flushed once the previous gateway has drained.
type telemetryState struct {
	tel *telemetry.Telemetry
	cfg engine.TelemetryConfig
}

// attachTelemetry installs telemetry on gw, making it anew if the telemetry block changed. The
// returned function retires the previous telemetry; call it after the previous gateway drained.
func (r *runner) attachTelemetry(gw *engine.Gateway) (retire func(), err error) {
	retire = func() {}
	if r.tel.tel == nil || !reflect.DeepEqual(r.tel.cfg, gw.Spec.Telemetry) {
		t, err := telemetry.New(&gw.Spec.Telemetry, r.log)
		if err != nil {
			return nil, err
		}
		if old := r.tel.tel; old != nil {
			retire = func() { shutdownTelemetry(old) }
		}
		r.tel = telemetryState{tel: t, cfg: gw.Spec.Telemetry}
	}
	r.tel.tel.Attach(gw)
	return retire, nil
}

// shutdownTelemetryBy exports the queued spans until deadline; what is left then is counted as
// lost (sluice_telemetry_spans_total{outcome="dropped_shutdown"}) and logged.
func (r *runner) shutdownTelemetryBy(deadline time.Time) {
	if r.tel.tel != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		_ = r.tel.tel.Shutdown(ctx)
	}
}

// shutdownTelemetry retires telemetry replaced by a reload, within telemetryRetireTimeout.
func shutdownTelemetry(t *telemetry.Telemetry) {
	ctx, cancel := context.WithTimeout(context.Background(), telemetryRetireTimeout)
	defer cancel()
	_ = t.Shutdown(ctx)
}

const telemetryRetireTimeout = 5 * time.Second
