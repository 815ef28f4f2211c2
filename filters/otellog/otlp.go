package otellog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
}

func newOTLPSink(url, service string) (*otlpSink, error) {
	exp, err := otlploghttp.New(context.Background(),
		otlploghttp.WithEndpointURL(url),
		otlploghttp.WithTimeout(5*time.Second),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{
			Enabled: true, InitialInterval: 500 * time.Millisecond, MaxInterval: 5 * time.Second, MaxElapsedTime: 15 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP log exporter: %w", err)
	}
	lp := sdklog.NewLoggerProvider(
		sdklog.WithResource(telemetry.Resource(service)),
		sdklog.WithProcessor(sdklog.NewBatchProcessor(exp,
			sdklog.WithMaxQueueSize(2048),
			sdklog.WithExportMaxBatchSize(512),
			sdklog.WithExportInterval(time.Second))),
	)
	return &otlpSink{lp: lp, logger: lp.Logger("github.com/sluice-gateway/sluice/filters/otellog")}, nil
}

func (o *otlpSink) emit(c *engine.Ctx, f *Filter, now time.Time, cut error, th *traceHeaders) {
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
		if id := req.Header.Peek(f.reqID); len(id) > 0 {
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
	if c.Pipeline != nil {
		attrs = append(attrs, semconv.HTTPRoute(c.Pipeline.Name))
	}
	if code, ok := engine.GRPCStatusOf(c); ok {
		attrs = append(attrs, semconv.RPCSystemGRPC, semconv.RPCGRPCStatusCodeKey.Int(code))
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
		v := req.Header.Peek(h.name)
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

func (o *otlpSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.lp.Shutdown(ctx); err != nil {
		return fmt.Errorf("otel_log: flushing OTLP logs: %w", err)
	}
	return nil
}
