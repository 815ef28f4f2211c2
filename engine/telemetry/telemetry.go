package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultEndpoint is where the OTLP exporters send when the config names no endpoint: an
// OpenTelemetry Collector (or testbed/cmd/otlpreceiver) on its standard OTLP/HTTP port.
const DefaultEndpoint = "http://127.0.0.1:4318"

// Version is reported as service.version on exported telemetry; cmd/sluice sets it at start.
var Version = "dev"

// Telemetry owns the trace pipeline (provider, batcher, exporter) and the request observer.
type Telemetry struct {
	log *slog.Logger
	tp  *sdktrace.TracerProvider // nil when tracing is off
	obs *observer
	// gen counts Attach calls (passes.go).
	gen atomic.Uint64

	recs *recordExport // the observer's span records and where they go (spanrecord.go)
	// ratioBound is sample_ratio scaled to 2^63: a root trace is sampled when 63 random bits are
	// below it (the rule of the SDK's TraceIDRatioBased sampler, applied to our own random draw).
	ratioBound uint64
	respHeader []byte // canonical form ("X-Trace-Id"); nil when not configured

	// recent and edge are what the dashboard shows of recent requests (recent.go, dashstats.go).
	recent *Recent
	edge   edgeStats
	// noStageTimes is `stage_timings = false`.
	noStageTimes bool

	// serverTiming answers Server-Timing: traceparent;desc="…" (Trace Context Level 2).
	serverTiming bool
	// filterSpans records a span per filter phase (traces.filter_spans).
	filterSpans bool
	spanLoss    *lossCounter
	shutdown    atomic.Bool
}

// New sets up telemetry from the `telemetry` block (nil means defaults: no tracing). Metrics are
// always recorded; tracing runs when traces.exporter is "otlp" or "stdout".
func New(cfg *engine.TelemetryConfig, log *slog.Logger) (*Telemetry, error) {
	if log == nil {
		log = slog.Default()
	}
	t := &Telemetry{log: log}
	t.obs = &observer{t: t, unrouted: &pipeInfo{metrics: newPipeMetrics("")}}
	var rc *engine.RecentTracesConfig
	if cfg != nil {
		rc = cfg.RecentTraces
		t.noStageTimes = cfg.StageTimings != nil && !*cfg.StageTimings
	}
	t.recent = newRecent(rc)

	// Whatever runs an OpenTelemetry exporter (tracing, otel_log's OTLP output) reports its
	// errors through the gateway's log, rate-limited, never to stderr.
	InstallErrorHandler(log)
	if cfg == nil || cfg.Traces == nil {
		return t, nil
	}
	tc := cfg.Traces
	if err := tc.Validate(); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	var exp sdktrace.SpanExporter
	switch tc.Exporter {
	case "", "none":
		return t, nil
	case "otlp":
		u, err := signalURL(tc.Endpoint, "/v1/traces")
		if err != nil {
			return nil, fmt.Errorf("telemetry: traces endpoint: %w", err)
		}
		if useOwnExporter() {
			// The gateway's exporter (otlphttp.go) encodes the batch straight into protobuf.
			exp = newOTLPHTTPExporter(u, cfg)
			break
		}
		timeout := exportTimeoutOf(cfg)
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(u),
			otlptracehttp.WithTimeout(timeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
				Enabled: true, InitialInterval: 500 * time.Millisecond, MaxInterval: 5 * time.Second, MaxElapsedTime: timeout,
			}),
		}
		if h := ExportHeaders(cfg, SignalTraces); h != nil {
			opts = append(opts, otlptracehttp.WithHeaders(h))
		}
		exp, err = otlptracehttp.New(context.Background(), opts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: creating the OTLP trace exporter: %w", err)
		}
	case "stdout":
		var err error
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			return nil, fmt.Errorf("telemetry: creating the stdout trace exporter: %w", err)
		}
	}
	t.startTracing(cfg, exp)
	return t, nil
}

// startTracing makes the tracer provider around exp.
func (t *Telemetry) startTracing(cfg *engine.TelemetryConfig, exp sdktrace.SpanExporter) {
	tc := cfg.Traces
	ratio := 1.0
	if tc.SampleRatio != nil {
		ratio = *tc.SampleRatio
	}
	t.ratioBound = ratioBound(ratio)
	if tc.ResponseHeader != "" {
		t.respHeader = canonicalHeader(tc.ResponseHeader)
	}
	t.serverTiming = tc.ServerTiming
	t.filterSpans = tc.FilterSpansOn()
	t.spanLoss = newLossCounter(SignalTraces, t.log, cfg.ReportInterval.D())
	res := Resource(cfg.ServiceName)
	sb := newSpanBatcher(exp, batchConfigOf(cfg), t.spanLoss)
	// The observer records its spans (server, filter phases, upstream attempts) in pooled records
	// it queues itself; the SDK provider makes the spans filters start with the OpenTelemetry API
	// under them. Both go through the one batcher, exporter and loss counter.
	t.tp = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		// The observer decides sampling itself (parent-based ratio) and only records spans of
		// sampled requests, so the SDK records whatever it is given.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(sb),
	)
	t.recs = newRecordExport(res, func(r *spanRecord) { sb.add(r) })
	t.recs.queueAll = sb.addAll
	t.recs.tp = t.tp
	t.obs.tracing = true
}

// tracerName is the instrumentation scope of the gateway's spans.
const tracerName = "github.com/sluice-gateway/sluice"

// Resource describes this process to the tracing backend: service.name and service.version.
func Resource(serviceName string) *resource.Resource {
	if serviceName == "" {
		serviceName = "sluice"
	}
	return resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(serviceName), semconv.ServiceVersion(Version))
}

// SignalURL turns an OTLP/HTTP endpoint from the config into the URL of one signal: a bare
// "http://host:4318" gets the standard path (/v1/traces, /v1/logs); a URL with a path is used as
// written. An empty endpoint means DefaultEndpoint.
func signalURL(endpoint, path string) (string, error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: want an http:// or https:// URL such as %q", endpoint, DefaultEndpoint)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = path
	}
	return u.String(), nil
}

// SignalURL is signalURL for other packages (the otel_log filter's OTLP logs exporter).
func SignalURL(endpoint, path string) (string, error) { return signalURL(endpoint, path) }

func ratioBound(r float64) uint64 {
	switch {
	case r <= 0 || math.IsNaN(r):
		return 0
	case r >= 1:
		return math.MaxUint64
	}
	return uint64(r * (1 << 63))
}

// Tracing reports whether spans are recorded and exported.
func (t *Telemetry) Tracing() bool { return t.tp != nil }

// TracerProvider returns the SDK provider (nil when tracing is off), for components that want to
// start their own spans under the request's.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t.tp == nil {
		return nil
	}
	return t.tp
}

// Observer returns the request observer to install with Gateway.SetObserver. It is never nil:
// metrics are always recorded. With tracing off it only counts and times requests and allocates
// nothing.
func (t *Telemetry) Observer() engine.Observer { return t.obs }

// Attach installs the observer on gw and resolves its pipelines' metrics and span names up front,
// kept on each pipeline (the observer reads them there on every request, without a lookup).
// Calling gw.SetObserver(t.Observer()) works too, but then each pipeline's state is found in a
// map, at about 0.1 µs per request, and the map keeps every pipeline ever served.
func (t *Telemetry) Attach(gw *engine.Gateway) {
	trackPipelines(gw)  // metrics.go: the series of pipelines a reload removes go with them
	gen := t.gen.Add(1) // the pipelines attached before are retired at the next flushPasses
	for _, p := range gw.Pipelines {
		pi := newPipeInfo(t.obs, p)
		pi.gen = gen
		p.SetObserverState(pi)
		trackPasses(pi) // passes.go
	}
	flushPasses() // retires the pipelines attached before: the list stays as long as the gateway's
	gw.SetObserver(t.obs)
	gw.SetStageTimes(!t.noStageTimes)
}

// Flush exports every finished span now.
func (t *Telemetry) Flush(ctx context.Context) error {
	if t.tp == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// Shutdown flushes what is queued and stops the exporter; spans of requests still running are
// lost. Bound it with ctx: a collector that is down makes it wait for the deadline.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.tp == nil || t.shutdown.Swap(true) {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: flushing traces: %w", err)
	}
	return nil
}

// canonicalHeader spells a header name as fasthttp normalizes it (upper case after each '-'),
// so setting it per request skips normalizing.
func canonicalHeader(name string) []byte {
	b := []byte(strings.ToLower(name))
	up := true
	for i, c := range b {
		if up && c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		up = c == '-'
	}
	return b
}
