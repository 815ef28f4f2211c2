package balancer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var (
	mRequests = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_upstream_requests_total",
		Help: "Upstream attempts (retries included) by upstream and target.",
	}, []string{"upstream", "target"})
	mFailures = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_upstream_failures_total",
		Help: "Failed upstream attempts by upstream, target and reason (connect_refused, timeout, reset, tls, 5xx).",
	}, []string{"upstream", "target", "reason"})
	mEjections = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_upstream_ejections_total",
		Help: "Outlier ejections by upstream, target and reason (consecutive_failures: outlier_detection's limit was reached).",
	}, []string{"upstream", "target", "reason"})
	mLatency = metrics.NewHistogramVec("sluice_upstream_attempt_duration_seconds",
		"Time to the upstream's response headers, per attempt, by upstream and target.",
		[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, "upstream", "target")
	mRetries = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_upstream_retries_total",
		Help: "Retries by upstream and reason, what the attempt retried past: connect_refused, timeout, reset, tls, 5xx, status (a retry.on status below 500) or grpc (retry.grpc_on).",
	}, []string{"upstream", "reason"})
	mBudgetExhausted = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_upstream_retry_budget_exhausted_total",
		Help: "Retries refused because the retry budget was spent, by upstream.",
	}, []string{"upstream"})
	mNoTarget = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_upstream_no_healthy_target_total",
		Help: "Requests answered 503 because no target was available, by upstream.",
	}, []string{"upstream"})
	mCircuitOpen = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_upstream_circuit_open_total",
		Help: "Requests refused (503) or retries not made because a circuit_breaker limit was reached, by upstream and limit (max_requests, max_pending, max_retries).",
	}, []string{"upstream", "limit"})
)

// The admin dashboard samples these two once a second from their own registry (metrics.Dashboard).
func init() { metrics.Dashboard.MustRegister(mFailures, mEjections) }

// upstreamMetrics holds an upstream's collectors with their label values resolved, so recording
// on the request path does not allocate.
type upstreamMetrics struct {
	name            string
	retries         [nRetryReasons]*metrics.LazyCounter // by retryReason
	budgetExhausted prometheus.Counter
	noTarget        prometheus.Counter
	// Refusals of the circuit breaker, by limit.
	circuitRequests, circuitPending, circuitRetries prometheus.Counter
}

type targetMetrics struct {
	requests  prometheus.Counter
	failures  [nFailReasons]*metrics.LazyCounter // by failReason (0 unused)
	ejections *metrics.LazyCounter
	latency   *metrics.Histogram
}

func newUpstreamMetrics(name string) *upstreamMetrics {
	m := &upstreamMetrics{
		name:            name,
		budgetExhausted: mBudgetExhausted.WithLabelValues(name),
		noTarget:        mNoTarget.WithLabelValues(name),
		circuitRequests: mCircuitOpen.WithLabelValues(name, "max_requests"),
		circuitPending:  mCircuitOpen.WithLabelValues(name, "max_pending"),
		circuitRetries:  mCircuitOpen.WithLabelValues(name, "max_retries"),
	}
	for r := range m.retries {
		m.retries[r] = metrics.NewLazyCounter(mRetries, name, retryReasonNames[r])
	}
	return m
}

func (m *upstreamMetrics) forTarget(addr string) *targetMetrics {
	tm := &targetMetrics{
		requests:  mRequests.WithLabelValues(m.name, addr),
		ejections: metrics.NewLazyCounter(mEjections, m.name, addr, "consecutive_failures"),
		latency:   mLatency.WithLabelValues(m.name, addr),
	}
	for r := failConnectRefused; r < nFailReasons; r++ {
		tm.failures[r] = metrics.NewLazyCounter(mFailures, m.name, addr, failReasonNames[r])
	}
	return tm
}
