// Package metrics holds the gateway's Prometheus registry. Filters and upstreams declare their
// collectors on Registry at package init (promauto.With(metrics.Registry)); the admin API serves
// it at /metrics. Label values are resolved once at build time (WithLabelValues) so recording on
// the request path does not allocate. Latency histograms on the request path use HistogramVec,
// which is cheaper to record into than client_golang's.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the process-wide registry served at /metrics.
var Registry = prometheus.NewRegistry()

// Dashboard holds, besides Registry, the few families the admin dashboard samples every second
// (the upstreams' failures and ejections by reason). Gathering Registry for them ran every
// collector, the process collector's /proc reads included: 2.9 million instructions a second in
// an idle gateway, and garbage that started collections under load.
var Dashboard = prometheus.NewRegistry()

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}
