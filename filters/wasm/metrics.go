package wasm

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var (
	labels     = []string{"pipeline", "filter"}
	mCalls     = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{Name: "sluice_wasm_calls_total", Help: "Calls into Wasm guests (handle_request and handle_response)."}, labels)
	mTraps     = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{Name: "sluice_wasm_traps_total", Help: "Guest calls that trapped, exited or were refused by a host function."}, labels)
	mTimeouts  = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{Name: "sluice_wasm_timeouts_total", Help: "Guest calls stopped at the filter's timeout."}, labels)
	mPoolWaits = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{Name: "sluice_wasm_pool_waits_total", Help: "Requests that found pool_max instances busy and had to wait."}, labels)
	mPoolFull  = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{Name: "sluice_wasm_pool_exhausted_total", Help: "Requests that waited pool_wait without getting an instance."}, labels)
	mInstances = promauto.With(metrics.Registry).NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_wasm_instances", Help: "Live guest instances (idle or pinned by a request)."}, labels)
)

// filterMetrics are one filter's collectors, resolved at build time so recording allocates
// nothing. A reloaded filter with the same pipeline and label shares them; the gauge is only
// ever moved by Inc/Dec/Sub, so old and new filters add up while both exist.
type filterMetrics struct {
	calls, traps, timeouts, poolWaits, poolFull prometheus.Counter
	instances                                   prometheus.Gauge
}

func metricsFor(pipeline, filter string) filterMetrics {
	return filterMetrics{
		calls:     mCalls.WithLabelValues(pipeline, filter),
		traps:     mTraps.WithLabelValues(pipeline, filter),
		timeouts:  mTimeouts.WithLabelValues(pipeline, filter),
		poolWaits: mPoolWaits.WithLabelValues(pipeline, filter),
		poolFull:  mPoolFull.WithLabelValues(pipeline, filter),
		instances: mInstances.WithLabelValues(pipeline, filter),
	}
}
