package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// collectingExporter keeps what it is given as snapshots (records go back to their pool after
// an export, so the test copies them first).
type collectingExporter struct{ spans []sdktrace.ReadOnlySpan }

func (e *collectingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	for _, s := range spans {
		e.spans = append(e.spans, tracetest.SpanStubFromReadOnlySpan(s).Snapshot())
	}
	return nil
}
func (e *collectingExporter) Shutdown(context.Context) error { return nil }

// TestOTLPEncodingMatchesSDK: the request the gateway's exporter posts decodes, with the
// collector's own OTLP types, to exactly what the SDK's otlptracehttp exporter posts for the
// same spans: the observer's (a sampled request with a remote parent and tracestate, filter
// spans, the upstream span) and one made with the SDK (events, a link, every attribute type,
// an error status).
func TestOTLPEncodingMatchesSDK(t *testing.T) {
	col := &collectingExporter{}
	tel, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ratio := 1.0
	tel.startTracing(&engine.TelemetryConfig{ServiceName: "enc", Traces: &engine.TracesConfig{Exporter: "otlp", SampleRatio: &ratio}}, col)
	r := newRig(t, tel, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "a=1,b=2")
	r.run()
	_, sp := tel.TracerProvider().Tracer("filter.scope").Start(context.Background(), "sdk span",
		trace.WithLinks(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{2}, Remote: true})}))
	sp.SetAttributes(attribute.Bool("b", true), attribute.Float64("f", 1.5), attribute.Int64("i", -3), attribute.String("empty", ""),
		attribute.StringSlice("ss", []string{"x", "y"}), attribute.Int64Slice("is", []int64{1, 2}),
		attribute.String("long", strings.Repeat("x", 300)), attribute.Int64("big", 1<<40), attribute.String("", "no key"))
	sp.AddEvent("ev", trace.WithAttributes(attribute.String("k", "v")))
	sp.RecordError(errors.New("boom"))
	sp.SetStatus(codes.Error, "bad")
	sp.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(col.spans) != 9 {
		t.Fatalf("%d spans, want 9 (server, 6 filter phases, upstream, the SDK's)", len(col.spans))
	}

	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		bodies <- b
	}))
	defer srv.Close()
	ctx := context.Background()
	ours := newOTLPHTTPExporter(srv.URL+"/v1/traces", &engine.TelemetryConfig{})
	if err := ours.ExportSpans(ctx, col.spans); err != nil {
		t.Fatal(err)
	}
	sdk, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sdk.ExportSpans(ctx, col.spans); err != nil {
		t.Fatal(err)
	}
	var got [2]string
	for i := range got {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(<-bodies); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		js, err := req.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		got[i] = string(js)
	}
	if got[0] != got[1] {
		t.Errorf("the gateway's encoding decodes to\n%s\nthe SDK's to\n%s", got[0], got[1])
	}
}

// TestOTLPExporterRetries: 503 is retried (after the collector's Retry-After), 400 is not.
func TestOTLPExporterRetries(t *testing.T) {
	var calls, status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer t" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(int(status.Load()))
		}
	}))
	defer srv.Close()
	cfg := &engine.TelemetryConfig{Headers: map[string]string{"Authorization": "Bearer t"}, ExportTimeout: engine.Duration(5 * time.Second)}
	exp := newOTLPHTTPExporter(srv.URL, cfg)
	span := tracetest.SpanStub{Name: "x"}.Snapshot()
	start := time.Now()
	if err := exp.ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{span}); err != nil {
		t.Fatalf("503 then 200: %v", err)
	}
	if n, waited := calls.Load(), time.Since(start); n != 2 || waited < time.Second {
		t.Errorf("%d calls in %v, want 2 after the 1 s Retry-After", n, waited)
	}
	calls.Store(0)
	status.Store(http.StatusBadRequest)
	if err := exp.ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{span}); err == nil || calls.Load() != 1 {
		t.Errorf("400: err %v after %d calls, want an error after 1", err, calls.Load())
	}
}

// BenchmarkExportBatch is the export side of tracing: one batch of 512 spans (64 sampled
// requests of the rig: a server span, six filter phases, the upstream span) encoded and posted to
// a local collector that discards it, by the gateway's exporter and by the SDK's otlptracehttp.
// cpu-ns/span is the process's CPU time (both sides of the connection) per span.
func BenchmarkExportBatch(b *testing.B) {
	col := &collectingExporter{}
	tel, err := New(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ratio := 1.0
	tel.startTracing(&engine.TelemetryConfig{ServiceName: "bench", Traces: &engine.TracesConfig{Exporter: "otlp", SampleRatio: &ratio}}, col)
	r := newRig(b, tel)
	for range 64 {
		r.run()
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	spans := col.spans
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
	}))
	defer srv.Close()
	sdk, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		exp  sdktrace.SpanExporter
	}{
		{"gateway", newOTLPHTTPExporter(srv.URL+"/v1/traces", &engine.TelemetryConfig{})},
		{"sdk", sdk},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := bc.exp.ExportSpans(context.Background(), spans); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*len(spans)), "cpu-ns/span")
		})
	}
	// The encoding alone, without the HTTP exchange.
	b.Run("gateway_encode_only", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		cpu0 := cpuTime()
		for b.Loop() {
			buf = appendExportRequest(buf[:0], spans)
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*len(spans)), "cpu-ns/span")
		b.ReportMetric(float64(len(buf)), "bytes/batch")
	})
}

// recordCheckingExporter encodes each record both from its fields (appendRecord, what the
// gateway's exporter does) and through the ReadOnlySpan interface (encodeSpan, whose output
// TestOTLPEncodingMatchesSDK checks against the SDK's), and counts the differences.
type recordCheckingExporter struct{ records, mismatch int }

func (e *recordCheckingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	for _, s := range spans {
		if r, ok := s.(*spanRecord); ok {
			e.records++
			if string(appendRecord(nil, r)) != string(encodeSpan(nil, r)) {
				e.mismatch++
			}
		}
	}
	return nil
}
func (e *recordCheckingExporter) Shutdown(context.Context) error { return nil }

// TestRecordEncoding: a record encoded from its fields gives the bytes encoding it through the
// ReadOnlySpan interface gives: a sampled request's spans (remote parent, tracestate, filter
// phases, the upstream attempt) and a record with events and an error status.
func TestRecordEncoding(t *testing.T) {
	chk := &recordCheckingExporter{}
	tel, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ratio := 1.0
	tel.startTracing(&engine.TelemetryConfig{ServiceName: "enc", Traces: &engine.TracesConfig{Exporter: "otlp", SampleRatio: &ratio}}, chk)
	r := newRig(t, tel, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "a=1,b=2")
	for range 3 {
		r.run()
	}
	// Lengths of one, two and three bytes (a short span, a 300-byte value, a span over 16 KiB), large and
	// negative integers, and fixed attributes, one of them set again by a filter (the last value
	// wins: they become ordinary attributes).
	big := tel.recs.get(nil, strings.Repeat("n", 200), trace.SpanKindServer, trace.TraceID{2}, trace.SpanID{3}, 1, time.Now().UnixNano())
	fixed := []attribute.KeyValue{attrFilterKind.String("k"), attrPhase.String("request")}
	var pb []byte
	for _, kv := range fixed {
		pb = appendKeyValue(pb, fSpanAttributes, kv)
	}
	big.setFixed(fixed, pb)
	big.SetAttributes(attribute.String("long", strings.Repeat("x", 300)), attribute.String("huge", strings.Repeat("y", 17000)),
		attribute.Int64("big", 1<<40), attribute.Int64("neg", -3), attribute.Bool("b", false), attribute.Float64("f", -2.5), attribute.String("", ""))
	big.SetStatus(codes.Error, strings.Repeat("d", 130))
	big.End()
	over := tel.recs.get(nil, "override", trace.SpanKindInternal, trace.TraceID{2}, trace.SpanID{4}, 1, time.Now().UnixNano())
	over.setFixed(fixed, pb)
	over.SetAttributes(attribute.String("x", "1"), attrPhase.String("changed"))
	if a := over.Attributes(); len(a) != 3 || a[1].Value.AsString() != "changed" || len(over.fixed) != 0 {
		t.Errorf("setting a fixed attribute's key: %v, fixed %v", a, over.fixed)
	}
	over.End()
	tel.recs.get(nil, "short", trace.SpanKindInternal, trace.TraceID{2}, trace.SpanID{5}, 1, time.Now().UnixNano()).End() // under 128 bytes
	rec := tel.recs.get(nil, "failed", trace.SpanKindInternal, trace.TraceID{1}, trace.SpanID{}, 1, time.Now().UnixNano())
	rec.SetAttributes(attribute.Bool("b", true), attribute.Float64("f", 1.5), attribute.StringSlice("ss", []string{"x"}))
	rec.AddEvent("ev", trace.WithAttributes(attribute.String("k", "v")))
	rec.RecordError(errors.New("boom"))
	rec.SetStatus(codes.Error, "bad")
	rec.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if chk.records != 28 || chk.mismatch != 0 {
		t.Errorf("%d records, %d encoded differently from their fields; want 28 and 0", chk.records, chk.mismatch)
	}
}

// BenchmarkEncodeRecords is the exporter's encoding of the observer's own records, as the gateway
// exports them: one batch of 512 (64 sampled requests of the rig), encoded b.N times while the
// batcher holds them (records return to their pool after the export call).
func BenchmarkEncodeRecords(b *testing.B) {
	exp := &encodeLoopExporter{b: b}
	tel, err := New(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ratio := 1.0
	tel.startTracing(&engine.TelemetryConfig{ServiceName: "bench", Traces: &engine.TracesConfig{Exporter: "otlp", SampleRatio: &ratio}}, exp)
	r := newRig(b, tel)
	for range 64 {
		r.run()
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	if exp.spans != 512 {
		b.Fatalf("encoded batches of %d spans, want 512", exp.spans)
	}
}

type encodeLoopExporter struct {
	b     *testing.B
	spans int
}

func (e *encodeLoopExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.spans != 0 {
		return nil
	}
	e.spans = len(spans)
	var buf []byte
	e.b.ReportAllocs()
	e.b.ResetTimer()
	for range e.b.N {
		buf = appendExportRequest(buf[:0], spans)
	}
	e.b.StopTimer()
	e.b.ReportMetric(float64(e.b.Elapsed().Nanoseconds())/float64(e.b.N*len(spans)), "ns/span")
	return nil
}
func (e *encodeLoopExporter) Shutdown(context.Context) error { return nil }
