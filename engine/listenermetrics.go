package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// requestsInFlight counts, per listener, the requests admitted and not yet answered (USE:
// saturation). Each listener resolves its gauge once; a request adds and removes one.
var requestsInFlight = promauto.With(metrics.Registry).NewGaugeVec(prometheus.GaugeOpts{
	Name: "sluice_requests_in_flight",
	Help: "Requests admitted and not yet answered, by listener (a streamed response counts until its handler returns).",
}, []string{"listener"})
