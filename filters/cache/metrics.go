package cache

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var (
	mLookups = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_cache_lookups_total",
		Help: "GET and HEAD requests seen by the cache filter, by result (hit, stale, miss).",
	}, []string{"pipeline", "result"})
	mStores = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_cache_stores_total",
		Help: "Responses stored by the cache filter.",
	}, []string{"pipeline"})
	mSharedHits = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_cache_shared_hits_total",
		Help: "Hits answered from the shared Redis tier after a local miss (also counted as hit in sluice_cache_lookups_total).",
	}, []string{"pipeline"})
	mBytes = promauto.With(metrics.Registry).NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_cache_bytes",
		Help: "Bytes held by the cache filter (bodies, headers and bookkeeping).",
	}, []string{"pipeline"})
)

// metricSet holds a pipeline's collectors, resolved once at build time so recording does not
// allocate on the request path.
type metricSet struct {
	hit, stale, miss, stored prometheus.Counter
	sharedHit                prometheus.Counter
	bytes                    prometheus.Gauge
}

func newMetricSet(pipeline string) metricSet {
	return metricSet{
		hit:       mLookups.WithLabelValues(pipeline, "hit"),
		stale:     mLookups.WithLabelValues(pipeline, "stale"),
		miss:      mLookups.WithLabelValues(pipeline, "miss"),
		stored:    mStores.WithLabelValues(pipeline),
		sharedHit: mSharedHits.WithLabelValues(pipeline),
		bytes:     mBytes.WithLabelValues(pipeline),
	}
}
