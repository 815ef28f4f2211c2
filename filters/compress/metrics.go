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
// request path does not allocate. Each series is made on its first use: a filter that never
// compresses (or one made outside a pipeline) exports no always-zero series.
type counters struct {
	responses, in, out *metrics.LazyCounter
}

func newCounters(pipeline, encoding string) counters {
	return counters{
		responses: metrics.NewLazyCounter(mResponses, pipeline, encoding),
		in:        metrics.NewLazyCounter(mBytesIn, pipeline, encoding),
		out:       metrics.NewLazyCounter(mBytesOut, pipeline, encoding),
	}
}
