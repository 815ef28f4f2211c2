package otellog

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// otlpSink exports records as OpenTelemetry logs. The SDK's batch processor holds a bounded
// queue (oldest records are dropped when the collector cannot keep up) and exports in the
// background.
type otlpSink struct {
	lp     *sdklog.LoggerProvider
	logger otellog.Logger
	proc   telemetry.LogProcessor
	// closed is set before the provider shuts down, and emitting counts the emits under way:
	// CloseContext waits for those to end, so every record is either queued before the
	// shutdown's flush or counted as dropped_shutdown (the SDK would drop it silently).
	closed   atomic.Bool
	emitting atomic.Int64
	late     engine.LogLimit
	log      *slog.Logger
}

func newOTLPSink(url string, cfg *engine.TelemetryConfig, log *slog.Logger) (*otlpSink, error) {
	timeout := engine.DefaultTelemetryExportTimeout
	service := ""
	if cfg != nil {
		service = cfg.ServiceName
		if cfg.ExportTimeout > 0 {
			timeout = cfg.ExportTimeout.D()
		}
	}
	opts := []otlploghttp.Option{
		otlploghttp.WithEndpointURL(url),
		otlploghttp.WithTimeout(timeout),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{
			Enabled: true, InitialInterval: 500 * time.Millisecond, MaxInterval: 5 * time.Second, MaxElapsedTime: timeout,
		}),
	}
	if h := telemetry.ExportHeaders(cfg, telemetry.SignalLogs); h != nil {
		opts = append(opts, otlploghttp.WithHeaders(h))
	}
	exp, err := otlploghttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP log exporter: %w", err)
	}
	// Errors of the SDK itself go to the gateway's log, rate-limited, even with tracing off.
	telemetry.InstallErrorHandler(log)
	if log == nil {
		log = slog.Default()
	}
	// Queue, batches and loss counting (sluice_telemetry_logs_total) as for spans.
	proc := telemetry.NewLogProcessor(exp, cfg, log)
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(telemetry.Resource(service)), sdklog.WithProcessor(proc))
	return &otlpSink{lp: lp, logger: lp.Logger("github.com/sluice-gateway/sluice/filters/otellog"), proc: proc, log: log}, nil
}

func (o *otlpSink) emit(c *engine.Ctx, f *Filter, now time.Time, cut error, th *traceHeaders) {
	o.emitting.Add(1)
	defer o.emitting.Add(-1)
	if o.closed.Load() {
		o.proc.DroppedClosed(1)
		if ok, suppressed := o.late.Allow(time.Now(), 1); ok {
			o.log.Warn("access log record dropped: its OTLP output was closed (the request's configuration was replaced or the gateway stopped before its streamed response ended)",
				"suppressed", suppressed)
		}
		return
	}
	req := c.Request
	status := c.Response.StatusCode()
	start := c.Start
	if start.IsZero() {
		start = now
	}
	var r otellog.Record
	r.SetTimestamp(start)
	r.SetObservedTimestamp(now)
	switch {
	case status >= 500 || cut != nil:
		r.SetSeverity(otellog.SeverityError)
		r.SetSeverityText("ERROR")
	case status >= 400:
		r.SetSeverity(otellog.SeverityWarn)
		r.SetSeverityText("WARN")
	default:
		r.SetSeverity(otellog.SeverityInfo)
		r.SetSeverityText("INFO")
	}
	method, path := string(req.Header.Method()), string(rawPath(req))
	r.SetBody(attribute.StringValue(method + " " + path + " " + strconv.Itoa(status)))
	r.SetEventName("sluice.access")
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(method),
		semconv.ServerAddress(string(hostOnly(req.Header.Host()))),
		semconv.URLPath(path),
		semconv.HTTPResponseStatusCode(status),
		semconv.HTTPResponseBodySize(bodySize(c)),
		attribute.Float64("sluice.duration_ms", durationMS(now.Sub(start))),
		attribute.Float64("sluice.upstream_ms", durationMS(c.UpstreamTime)),
		attribute.String("sluice.upstream.target", c.Target),
		attribute.Int("sluice.upstream.attempts", c.Attempts),
		semconv.HTTPRequestBodySize(int(c.BytesIn())),
		attribute.String("sluice.response.source", source(c)),
		attribute.String("sluice.response.flags", string(c.Flags.AppendText(nil))),
	}
	if f.reqID != "" {
		if id := f.reqIDh.Peek(&req.Header); len(id) > 0 {
			attrs = append(attrs, attribute.String("sluice.request.id", string(id)))
		}
	}
	if th != nil {
		if len(th.parent) > 0 {
			attrs = append(attrs, attribute.StringSlice("http.request.header.traceparent", []string{string(th.parent)}))
		}
		if len(th.state) > 0 {
			attrs = append(attrs, attribute.StringSlice("http.request.header.tracestate", []string{string(th.state)}))
		}
	}
	if c.ClientAddr.IsValid() {
		attrs = append(attrs, semconv.ClientAddress(c.ClientAddr.String()))
	}
	if p := c.ServingPipeline(); p != nil {
		attrs = append(attrs, semconv.HTTPRoute(p.Name))
	}
	if e := c.EntryPipeline(); e != c.ServingPipeline() {
		attrs = append(attrs, attribute.String("sluice.entry_pipeline", e.Name))
	}
	if code, ok := engine.GRPCStatusOf(c); ok {
		attrs = append(attrs, semconv.RPCSystemGRPC, semconv.RPCGRPCStatusCodeKey.Int(code))
	}
	if cons, ok := engine.ConsumerKey.Get(c); ok && cons != nil {
		// Sluice's own names: the conventions have none for an API consumer.
		attrs = append(attrs, attribute.String("sluice.consumer", cons.ID), attribute.String("sluice.auth_method", cons.Method))
	}
	if cc, ok := engine.ClientCertKey.Get(c); ok {
		// The conventions' tls.client.* names, and Sluice's own for the SANs.
		attrs = append(attrs, attribute.String("tls.client.subject", cc.Subject),
			attribute.String("tls.client.hash.sha256", cc.Fingerprint),
			attribute.String("tls.client.not_after", cc.NotAfter.UTC().Format(time.RFC3339)),
			attribute.String("sluice.tls.client.serial", cc.Serial))
		if len(cc.URISANs) > 0 {
			attrs = append(attrs, attribute.StringSlice("sluice.tls.client.uri_sans", cc.URISANs))
		}
		if len(cc.DNSSANs) > 0 {
			attrs = append(attrs, attribute.StringSlice("sluice.tls.client.dns_sans", cc.DNSSANs))
		}
	}
	if v, ok := strings.CutPrefix(c.Proto, "HTTP/"); ok {
		if v == "2.0" {
			v = "2" // the conventions' network.protocol.version: "1.0", "1.1", "2"
		}
		attrs = append(attrs, semconv.NetworkProtocolVersion(v))
	}
	for _, h := range f.headers {
		v := h.key.Peek(&req.Header)
		if v == nil {
			continue
		}
		val := string(v)
		if h.redacted {
			val = redacted
		}
		// The conventions' http.request.header.<name> is a string array.
		attrs = append(attrs, attribute.StringSlice("http.request.header."+h.name, []string{val}))
	}
	if err := recordError(c, cut); err != nil {
		attrs = append(attrs, attribute.String("error.message", err.Error()))
	}
	r.AddAttributes(attrs...)
	ctx := context.Background()
	if sc := telemetry.SpanContext(c); sc.IsValid() {
		// The SDK takes the record's trace and span ids from the context.
		ctx = trace.ContextWithSpanContext(ctx, sc)
	}
	o.logger.Emit(ctx, r)
}

// Close exports what is queued, within closeTimeout.
func (o *otlpSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return o.CloseContext(ctx)
}

// CloseContext exports what is queued until ctx ends; what is still queued then is counted as
// dropped_shutdown and reported in the log.
func (o *otlpSink) CloseContext(ctx context.Context) error {
	o.closed.Store(true)
	// An emit that found the sink open ends in microseconds; wait for it, so that its record
	// is queued before the shutdown's flush rather than dropped by the stopped provider.
	for o.emitting.Load() > 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := o.lp.Shutdown(ctx); err != nil {
		return fmt.Errorf("otel_log: flushing OTLP logs: %w", err)
	}
	return nil
}
