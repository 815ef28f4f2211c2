package telemetry

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// The gateway-wide metrics. The request metrics (sluice_requests_total and the rest) are
// engine/metrics' RequestSeries, which the engine records into as well for requests refused
// before routing; other packages (balancer, rate_limit, wasm) declare their own collectors on the
// same registry.
var (
	configReloads = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_config_reloads_total",
		Help: "Configuration reloads, by result (success or failure).",
	}, []string{"result"})

	configLastReload = promauto.With(metrics.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "sluice_config_last_reload_success_timestamp_seconds",
		Help: "When the running configuration was loaded (Unix seconds).",
	})

	grpcResponses = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_grpc_responses_total",
		Help: "gRPC calls answered, by pipeline and grpc-status code (0..16; \"none\" when the call ended without a status, as a cut stream). Counted when the status is known: for a streamed response, at its end.",
	}, []string{"pipeline", "code"})

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
	req *metrics.RequestSeries
	// grpc holds the gRPC status counters (index code; 17: no status), made on a pipeline's
	// first gRPC call so that pipelines serving none export no gRPC series.
	pipeline string
	grpc     [18]atomic.Pointer[prometheus.Counter]
}

// newPipeMetrics returns the metrics of the pipeline named pipeline ("": of the requests no
// pipeline served, labelled pipeline="(none)").
func newPipeMetrics(pipeline string) *pipeMetrics {
	if pipeline == "" {
		return &pipeMetrics{req: metrics.UnroutedRequests(), pipeline: metrics.Unrouted}
	}
	r := metrics.NewRequestSeries(pipeline)
	series.Lock()
	series.m[pipeline] = r
	series.Unlock()
	return &pipeMetrics{req: r, pipeline: pipeline}
}

// recordGRPC counts a gRPC call by its status (the response's grpc-status, or the one a cut
// stream implies).
func (pm *pipeMetrics) recordGRPC(c *engine.Ctx) {
	i, label := len(pm.grpc)-1, "none"
	if code, ok := engine.GRPCStatusOf(c); ok && code >= 0 && code < len(pm.grpc)-1 {
		i, label = code, strconv.Itoa(code)
	}
	if ctr := pm.grpc[i].Load(); ctr != nil {
		(*ctr).Inc()
		return
	}
	// WithLabelValues returns the same counter to concurrent first calls: storing either is fine.
	ctr := grpcResponses.WithLabelValues(pm.pipeline, label)
	pm.grpc[i].Store(&ctr)
	ctr.Inc()
}

// record counts c's request; dur is its duration (EndRequest's one clock read), untimed when
// c.Start is not set.
func (pm *pipeMetrics) record(c *engine.Ctx, status int, dur time.Duration) {
	q := metrics.Request{
		Method:       c.Request.Header.Method(),
		Status:       status,
		FromUpstream: c.FromUpstream,
		Timed:        !c.Start.IsZero(),
		Duration:     dur,
		BytesIn:      c.BytesIn(),
		BytesOut:     c.BytesOut(),
	}
	pm.req.Record(&q)
}

// trackPipelines counts gw's pipelines as served until gw is closed; then the series of the
// names no running gateway serves any more (a reload removed them) are deleted.
func trackPipelines(gw *engine.Gateway) {
	names := make([]string, 0, len(gw.Pipelines))
	for _, p := range gw.Pipelines {
		names = append(names, p.Name)
	}
	metrics.AddPipelines(names)
	gw.OnClose(closerFunc(func() error {
		for _, name := range metrics.RemovePipelines(names) {
			metrics.DeletePipeline(retiredSeries(name), name)
			deleteStageSeries(name) // stagemetrics.go
			grpcResponses.DeletePartialMatch(prometheus.Labels{"pipeline": name})
		}
		return nil
	}))
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// series are the request series made for each pipeline name, so that a removed pipeline's can
// be marked retired (requests still draining on it then make no new series).
var series = struct {
	sync.Mutex
	m map[string]*metrics.RequestSeries
}{m: map[string]*metrics.RequestSeries{}}

func retiredSeries(name string) *metrics.RequestSeries {
	series.Lock()
	defer series.Unlock()
	r := series.m[name]
	delete(series.m, name)
	return r
}
