package ratelimit

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var (
	mDecisions = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ratelimit_decisions_total",
		Help: "Rate limit decisions by pipeline and policy; result is allowed or limited (429).",
	}, []string{"pipeline", "policy", "result"})
	mStoreErrorDecisions = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ratelimit_store_error_decisions_total",
		Help: "Requests decided by on_store_error (allow, deny or local) because the Redis store was unavailable.",
	}, []string{"pipeline", "policy", "mode"})
	mRedisUp = promauto.With(metrics.Registry).NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_ratelimit_redis_up",
		Help: "1 while the redis block answers rate limit decisions, 0 during an outage.",
	}, []string{"redis"})
	mRedisOutages = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ratelimit_redis_outages_total",
		Help: "Outages of a redis block seen by rate limiting (each is logged once).",
	}, []string{"redis"})
	mRedisErrors = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ratelimit_redis_errors_total",
		Help: "Failed rate limit commands (timeouts, refused connections, errors) per redis block.",
	}, []string{"redis"})
	mRedisLatency = metrics.NewHistogramVec("sluice_ratelimit_redis_decision_seconds",
		"Latency of successful rate limit decisions in Redis (one script call).",
		[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}, "redis")
)
