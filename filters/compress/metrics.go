package compress

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var (
	mResponses = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_compress_responses_total",
		Help: "Responses compressed by the compress filter, by encoding.",
	}, []string{"pipeline", "encoding"})
	mBytesIn = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_compress_bytes_in_total",
		Help: "Identity bytes of the responses the compress filter encoded.",
	}, []string{"pipeline", "encoding"})
	mBytesOut = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_compress_bytes_out_total",
		Help: "Encoded bytes the compress filter sent for them.",
	}, []string{"pipeline", "encoding"})
)

// counters are one encoding's collectors for one pipeline, resolved at build time so the
// request path does not allocate.
type counters struct {
	responses, in, out prometheus.Counter
}

func newCounters(pipeline, encoding string) counters {
	return counters{
		responses: mResponses.WithLabelValues(pipeline, encoding),
		in:        mBytesIn.WithLabelValues(pipeline, encoding),
		out:       mBytesOut.WithLabelValues(pipeline, encoding),
	}
}
