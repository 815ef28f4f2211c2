package telemetry

import (
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// The gateway-wide request metrics. Other packages (balancer, rate_limit, wasm) declare their own
// collectors on the same registry.
var (
	requestsTotal = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_requests_total",
		Help: "Requests served, by pipeline and response status class (1xx..5xx). Unrouted requests have pipeline=\"\".",
	}, []string{"pipeline", "status_class"})

	requestDuration = metrics.NewHistogramVec("sluice_request_duration_seconds",
		"Time from the start of handling to the end of the response phase, by pipeline.",
		[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "pipeline")

	configReloads = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_config_reloads_total",
		Help: "Configuration reloads, by result (success or failure).",
	}, []string{"result"})

	configLastReload = promauto.With(metrics.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "sluice_config_last_reload_success_timestamp_seconds",
		Help: "When the running configuration was loaded (Unix seconds).",
	})

	buildInfo = promauto.With(metrics.Registry).NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_build_info",
		Help: "Always 1; the labels describe the running binary.",
	}, []string{"version", "revision", "goversion"})

	reloadOK   = configReloads.WithLabelValues("success")
	reloadFail = configReloads.WithLabelValues("failure")
)

// ConfigReloaded counts a configuration reload attempt; call it after each one (the initial load
// counts as a success too, which sets the last-reload timestamp).
func ConfigReloaded(ok bool) {
	if ok {
		reloadOK.Inc()
		configLastReload.Set(float64(time.Now().UnixNano()) / 1e9)
		return
	}
	reloadFail.Inc()
}

// SetBuildInfo publishes sluice_build_info{version, revision, goversion} = 1.
func SetBuildInfo(version, revision string) {
	buildInfo.Reset()
	buildInfo.WithLabelValues(version, revision, runtime.Version()).Set(1)
}

// pipeMetrics are one pipeline's collectors, resolved once so recording allocates nothing.
type pipeMetrics struct {
	byClass [6]prometheus.Counter // index status/100; 0 holds anything outside 100..599
	latency *metrics.Histogram
}

func newPipeMetrics(pipeline string) *pipeMetrics {
	pm := &pipeMetrics{latency: requestDuration.WithLabelValues(pipeline)}
	pm.byClass[0] = requestsTotal.WithLabelValues(pipeline, "other")
	for i := 1; i <= 5; i++ {
		pm.byClass[i] = requestsTotal.WithLabelValues(pipeline, strconv.Itoa(i)+"xx")
	}
	return pm
}

func (pm *pipeMetrics) record(c *engine.Ctx, status int) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	pm.byClass[class].Inc()
	if !c.Start.IsZero() {
		pm.latency.Observe(time.Since(c.Start))
	}
}
