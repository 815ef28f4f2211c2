package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batchExporter records the span names of each export and reports each export on exported.
// When hold is non-nil, an export first reports on entered and then waits for hold to close.
type batchExporter struct {
	mu       sync.Mutex
	batches  [][]string
	shutdown bool
	exported chan int // the batch's size, after recording it
	entered  chan struct{}
	hold     chan struct{}
}

func newBatchExporter() *batchExporter {
	return &batchExporter{exported: make(chan int, 100), entered: make(chan struct{}, 100)}
}

func (e *batchExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.hold != nil {
		e.entered <- struct{}{}
		select {
		case <-e.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	e.mu.Lock()
	e.batches = append(e.batches, names)
	e.mu.Unlock()
	e.exported <- len(spans)
	return nil
}

func (e *batchExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.shutdown = true
	e.mu.Unlock()
	return nil
}

func (e *batchExporter) got() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parts []string
	for _, b := range e.batches {
		parts = append(parts, strings.Join(b, ","))
	}
	return strings.Join(parts, " | ")
}

// waitExport returns the size of the next export, failing the test after 5 s.
func (e *batchExporter) waitExport(t *testing.T) int {
	t.Helper()
	select {
	case n := <-e.exported:
		return n
	case <-time.After(5 * time.Second):
		t.Fatalf("no export; so far: %s", e.got())
		return 0
	}
}

func batcherProvider(t *testing.T, b spanBatcher) func(names ...string) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tp.Tracer("test")
	return func(names ...string) {
		for _, n := range names {
			_, sp := tr.Start(context.Background(), n)
			sp.End()
		}
	}
}

// A full batch is exported at once; a partial one waits for the timeout or a flush.
func TestSpanBatcherBatches(t *testing.T) {
	exp := newBatchExporter()
	b := testBatcher(t, exp, 100, 3, time.Hour, 5*time.Second)
	end := batcherProvider(t, b)

	end("a", "b", "c", "d")
	if n := exp.waitExport(t); n != 3 {
		t.Fatalf("first export has %d spans, want a full batch of 3", n)
	}
	if err := b.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := exp.got(); got != "a,b,c | d" {
		t.Errorf("exports %q, want %q", got, "a,b,c | d")
	}
	// A flush with nothing queued exports nothing.
	if err := b.ForceFlush(context.Background()); err != nil || len(exp.exported) != 1 {
		t.Errorf("empty flush: err %v, %d exports pending, want the 1 from before", err, len(exp.exported))
	}
}

func TestSpanBatcherTimeout(t *testing.T) {
	exp := newBatchExporter()
	b := testBatcher(t, exp, 100, 512, 20*time.Millisecond, 5*time.Second)
	end := batcherProvider(t, b)
	end("a", "b")
	if n := exp.waitExport(t); n != 2 {
		t.Errorf("timed export has %d spans, want 2", n)
	}
	// The timer is armed again by the next span after the queue emptied.
	end("c")
	if n := exp.waitExport(t); n != 1 {
		t.Errorf("second timed export has %d spans, want 1", n)
	}
}

// With the exporter stuck, spans beyond max_queue are dropped, counted, and reported in one line
// per interval.
func TestSpanBatcherDropsWhenFull(t *testing.T) {
	exp := newBatchExporter()
	exp.hold = make(chan struct{})
	b := testBatcher(t, exp, 2, 1, time.Hour, 5*time.Second)
	end := batcherProvider(t, b)
	end("a")
	<-exp.entered // the goroutine took "a" and is stuck exporting it
	end("b")
	// "b" filled a batch and woke the goroutine, which takes it from the queue and then waits for
	// the only export slot. Wait for that take: before it, the queue's room depends on when the
	// goroutine happens to run.
	waitQueueEmpty(t, b.batcher)
	end("c", "d", "e", "f") // c and d fill the queue; e and f are dropped
	close(exp.hold)
	if err := b.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := exp.got(); got != "a | b | c | d" {
		t.Errorf("exports %q, want %q", got, "a | b | c | d")
	}
	if got := counterValue(b.loss.queueFull); got != 2 {
		t.Errorf("dropped_queue_full = %v, want 2", got)
	}
	if got := counterValue(b.loss.exported); got != 4 {
		t.Errorf("exported = %v, want 4", got)
	}
	logs := b.loss.log.Handler().(*recordHandler)
	b.loss.report()
	b.loss.report() // nothing new: no second line
	lines := logs.lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "dropped_queue_full=2") || !strings.Contains(lines[0], "signal=traces") {
		t.Errorf("log lines %q, want one with dropped_queue_full=2", lines)
	}
}

// waitQueueEmpty waits until the batcher's goroutine has taken every queued item, failing the
// test after 5 s.
func waitQueueEmpty[T any](t *testing.T, b *batcher[T]) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d items still queued after 5 s", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSpanBatcherShutdown(t *testing.T) {
	exp := newBatchExporter()
	b := testBatcher(t, exp, 100, 512, time.Hour, 5*time.Second)
	end := batcherProvider(t, b)
	end("a", "b")
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	end("late")
	if err := b.ForceFlush(context.Background()); err != nil {
		t.Errorf("flush after shutdown: %v", err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	exp.mu.Lock()
	defer exp.mu.Unlock()
	if len(exp.batches) != 1 || strings.Join(exp.batches[0], ",") != "a,b" || !exp.shutdown {
		t.Errorf("exports %q, exporter shut down %v; want the queued a,b exported and the exporter shut down", exp.batches, exp.shutdown)
	}
}

// A stuck exporter bounds Shutdown by its context, not by the export timeout, and the stuck
// export is cancelled.
func TestSpanBatcherShutdownDeadline(t *testing.T) {
	exp := newBatchExporter()
	exp.hold = make(chan struct{}) // never closed: only a cancelled context ends the export
	b := testBatcher(t, exp, 100, 1, time.Hour, time.Minute)
	end := batcherProvider(t, b)
	end("a")
	<-exp.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Shutdown returned %v after %v, want the deadline error promptly", err, time.Since(start))
	}
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		t.Error("the batcher's goroutine is still running 5 s after Shutdown gave up")
	}
}

// testBatcher makes a span batcher exporting one batch at a time, with its own counters and a
// log that records its lines.
func testBatcher(t *testing.T, exp sdktrace.SpanExporter, maxQueue, maxBatch int, batchTimeout, exportTimeout time.Duration) spanBatcher {
	t.Helper()
	cfg := batchConfig{maxQueue: maxQueue, maxBatch: maxBatch, batchTimeout: batchTimeout, exportTimeout: exportTimeout, concurrency: 1}
	return newSpanBatcher(exp, cfg, testLoss(SignalTraces))
}

// testLoss is a lossCounter on fresh counters (not the registry's), logging to a recordHandler.
func testLoss(signal string) *lossCounter {
	l := newLossCounter(signal, slog.New(&recordHandler{}), time.Hour)
	for _, c := range []*prometheus.Counter{&l.queued, &l.exported, &l.queueFull, &l.exportFail, &l.shutdown, &l.failures} {
		*c = prometheus.NewCounter(prometheus.CounterOpts{Name: "test"})
	}
	return l
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// recordHandler keeps the log lines written to it as "msg k=v k=v".
type recordHandler struct {
	mu  sync.Mutex
	got []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	h.mu.Lock()
	h.got = append(h.got, b.String())
	h.mu.Unlock()
	return nil
}

func (h *recordHandler) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}
