package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

type nopFilter struct{}

// OnRequest annotates its span as filters do: free when the request is not sampled.
func (nopFilter) OnRequest(c *engine.Ctx) engine.Verdict {
	c.Annotate("sluice.test.outcome", "ok")
	if c.Recording() {
		c.AnnotateInt("sluice.test.remaining", 7)
	}
	return engine.Continue
}
func (nopFilter) OnResponse(*engine.Ctx) {}

// discardExporter drops spans, so benchmarks measure the request path, not the network.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// testTelemetry returns telemetry tracing at ratio into a discarding exporter (ratio < 0: tracing
// off, metrics only).
func testTelemetry(tb testing.TB, ratio float64) *Telemetry {
	tb.Helper()
	t, err := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	if ratio >= 0 {
		t.startTracing(&engine.TelemetryConfig{ServiceName: "bench", Traces: &engine.TracesConfig{Exporter: "otlp", SampleRatio: &ratio, ResponseHeader: "X-Trace-Id"}}, discardExporter{})
	}
	tb.Cleanup(func() { _ = t.Shutdown(context.Background()) })
	return t
}

// requestRig is one synthetic request served the way engine.Server serves it: observer start,
// a pipeline of three filters ending in a terminal that makes one upstream attempt, observer end.
type requestRig struct {
	fc    *fasthttp.RequestCtx
	p     *engine.Pipeline
	obs   engine.Observer
	up    fasthttp.Request
	lines []byte // the trace context lines of the last upstream attempt
}

func newRig(tb testing.TB, t *Telemetry, headers ...string) *requestRig {
	r := &requestRig{fc: new(fasthttp.RequestCtx)}
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI("/v1/items?id=7")
	req.Header.SetHost("api.example.com")
	req.Header.Set("User-Agent", "bench")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	r.fc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	stages := []engine.Stage{{Kind: "a", Filter: nopFilter{}}, {Kind: "b", Filter: nopFilter{}}, {Kind: "c", Name: "x", Filter: nopFilter{}}}
	r.p = engine.NewPipeline("api", engine.MatchConfig{}, "", stages, engine.TerminalFunc(r.terminal))
	r.p.Upstream = "backend"
	if t != nil {
		r.obs = t.Observer()
		gw := &engine.Gateway{Pipelines: []*engine.Pipeline{r.p}}
		t.Attach(gw)
	}
	r.up.Header.SetMethod("GET")
	r.up.SetRequestURI("/items?id=7")
	return r
}

func (r *requestRig) terminal(c *engine.Ctx) {
	if ao, ok := c.Observer().(engine.AttemptObserver); ok {
		var tok any
		tok, r.lines = ao.StartAttempt(c, "127.0.0.1:9001", &r.up, r.lines[:0])
		ao.EndAttempt(c, tok, 200, nil)
	}
	c.Response.SetStatusCode(200)
}

// serve mirrors engine.Server.handle.
func (r *requestRig) serve() *engine.Ctx {
	c := engine.AcquireCtx(r.fc)
	c.Start = time.Now()
	c.ClientAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	c.Path = engine.NormalizePath(c.Path[:0], r.fc.Request.URI().PathOriginal())
	if r.obs != nil {
		r.obs.StartRequest(c, r.p)
	}
	r.p.Serve(c)
	if r.obs != nil {
		r.obs.EndRequest(c)
	}
	return c
}

func (r *requestRig) run() {
	c := r.serve()
	engine.ReleaseCtx(c)
}

func TestAllocFree(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, tc := range []struct {
		name    string
		ratio   float64
		headers []string
	}{
		{"telemetry off", -2, nil},
		{"metrics only", -1, nil},
		{"unsampled root (ratio 0)", 0, nil},
		{"unsampled parent", 1, []string{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "tracestate", "a=1", "tracestate", "b=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tel *Telemetry
			if tc.ratio >= -1 {
				tel = testTelemetry(t, tc.ratio)
			}
			r := newRig(t, tel, tc.headers...)
			r.run() // warm pools
			if n := testing.AllocsPerRun(200, r.run); n != 0 {
				t.Errorf("%v allocations per request, want 0", n)
			}
		})
	}
}

// TestUnsampledPropagation: an unsampled request still gets a fresh span id and the incoming
// trace id, unsampled flag and combined tracestate upstream, and its trace id in the response.
func TestUnsampledPropagation(t *testing.T) {
	tel := testTelemetry(t, 0)
	r := newRig(t, tel, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "tracestate", "a=1", "tracestate", "b=2")
	c := r.serve()
	defer engine.ReleaseCtx(c)
	tp := lineValue(r.lines, "Traceparent")
	if len(tp) != 55 || tp[:36] != "00-4bf92f3577b34da6a3ce929d0e0e4736-" || tp[52:] != "-00" || tp[36:52] == "00f067aa0ba902b7" {
		t.Errorf("upstream traceparent %q", tp)
	}
	if ts := lineValue(r.lines, "Tracestate"); ts != "a=1,b=2" {
		t.Errorf("upstream tracestate %q", ts)
	}
	if h := string(c.Response.Header.Peek("X-Trace-Id")); h != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("X-Trace-Id %q", h)
	}
}

// TestSpanContextDuringRequest: filters see the request's trace and server span through
// SpanContext and c.Context, sampled or not.
func TestSpanContextDuringRequest(t *testing.T) {
	for _, ratio := range []float64{0, 1} {
		tel := testTelemetry(t, ratio)
		r := newRig(t, tel)
		var seen, fromCtx string
		r.p = engine.NewPipeline("api", engine.MatchConfig{}, "", []engine.Stage{{Kind: "probe", Filter: probe(func(c *engine.Ctx) {
			sc := SpanContext(c)
			seen = sc.TraceID().String() + "/" + sc.SpanID().String()
			fromCtx = traceIDOf(c)
		})}}, engine.TerminalFunc(r.terminal))
		(&engine.Gateway{Pipelines: []*engine.Pipeline{r.p}}).SetObserver(tel.Observer())
		c := r.serve()
		want := string(c.Response.Header.Peek("X-Trace-Id"))
		engine.ReleaseCtx(c)
		if len(want) != 32 || seen[:32] != want || fromCtx != want {
			t.Errorf("ratio %v: SpanContext %q, c.Context trace %q, response trace id %q", ratio, seen, fromCtx, want)
		}
	}
}

// lineValue returns the value of the header line name in lines ("Name: value\r\n" each), or
// "" when there is none, or when lines is not a sequence of such lines.
func lineValue(lines []byte, name string) string {
	for _, l := range strings.SplitAfter(string(lines), "\r\n") {
		if l == "" {
			break
		}
		n, v, ok := strings.Cut(l, ": ")
		if !ok || !strings.HasSuffix(v, "\r\n") {
			return ""
		}
		if n == name {
			return strings.TrimSuffix(v, "\r\n")
		}
	}
	return ""
}

type probe func(c *engine.Ctx)

func (p probe) OnRequest(c *engine.Ctx) engine.Verdict { p(c); return engine.Continue }
func (p probe) OnResponse(*engine.Ctx)                 {}

// cpuTime is the process's user+system CPU time. Benchmarks report cpu-ns/op beside ns/op: on a
// shared, overloaded machine wall time per op mostly measures waiting for a core, while CPU time
// per op (all threads: the span batcher and GC included) is the cost.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRequest is one request through three filters and one upstream attempt, as the server
// runs it, without sockets: "off" has no observer, "metrics_only" the observer with tracing off,
// ratio_X traces at sample_ratio X into a discarding exporter. The cost of telemetry is the
// difference to "off".
func BenchmarkRequest(b *testing.B) {
	for _, bc := range []struct {
		name    string
		ratio   float64
		headers []string
	}{
		{"off", -2, nil},
		{"metrics_only", -1, nil},
		{"ratio_0", 0, nil},
		{"ratio_0.01", 0.01, nil},
		{"ratio_1", 1, nil},
		{"ratio_0_with_parent", 0, []string{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "tracestate", "a=1"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var tel *Telemetry
			if bc.ratio >= -1 {
				tel = testTelemetry(b, bc.ratio)
			}
			r := newRig(b, tel, bc.headers...)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.run()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

func traceIDOf(c *engine.Ctx) string {
	return trace.SpanContextFromContext(c.Context).TraceID().String()
}

// TestSampledAllocs: a request traced at ratio 1 (a server span, a span per filter phase, the
// upstream attempt's span: 8 spans here) allocates at most 5 times on the request path, batching
// included (the span records are pooled; what remains is the batcher's per-batch work).
func TestSampledAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	// A collection empties sync.Pools; a running gateway refills its pool at once, the test
	// would count the refill.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	tel := testTelemetry(t, 1)
	r := newRig(t, tel)
	// Warm the record pool, then measure over enough requests that the steady state dominates:
	// the exports run on other goroutines and return records to the pool when they get a core,
	// so the first requests of a cold pool make new ones.
	for range 1100 {
		r.run()
	}
	if err := tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(5000, r.run); n > 5 {
		t.Errorf("%v allocations per sampled request, want at most 5", n)
	}
}

// TestRecordReuse: exported records wait on a bounded free list, and a sampled request takes its
// records from it at once (the server span, six filter phases, the upstream attempt: 8).
func TestRecordReuse(t *testing.T) {
	tel, err := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ratio := 1.0
	// No export but Flush's: the free list changes only when the test says.
	tel.startTracing(&engine.TelemetryConfig{ServiceName: "reuse", BatchTimeout: engine.Duration(time.Hour), Traces: &engine.TracesConfig{Exporter: "otlp", SampleRatio: &ratio}}, discardExporter{})
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	r := newRig(t, tel)
	for range 300 { // 2,400 records, more than the list keeps
		r.run()
	}
	if err := tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	free := func() int {
		tel.recs.mu.Lock()
		defer tel.recs.mu.Unlock()
		return len(tel.recs.free)
	}
	n := free()
	if n == 0 || n > maxFreeRecords {
		t.Fatalf("%d records free after the export, want 1 to %d", n, maxFreeRecords)
	}
	r.run()
	if m := free(); m != n-8 {
		t.Errorf("a sampled request left %d of %d records free, want %d", m, n, n-8)
	}
}
