package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// spanBatcher is the span processor between the tracer and the exporter: it queues finished
// spans and exports them in batches from one goroutine.
//
// The SDK's BatchSpanProcessor hands every span to its goroutine over a channel, which wakes that
// goroutine once per span: with a span per filter phase that is eight wake-ups per sampled
// request, each a few µs of scheduler and futex work on a busy proxy, which at a 1 % sample
// ratio cost more than the spans themselves. This one appends under a mutex and wakes its
// goroutine only when a batch is full, when the first queued span has waited the batch
// timeout, or to flush.
type spanBatcher struct {
	exp           sdktrace.SpanExporter
	maxQueue      int
	maxBatch      int
	batchTimeout  time.Duration
	exportTimeout time.Duration

	mu      sync.Mutex
	queue   []sdktrace.ReadOnlySpan
	dropped int         // spans refused because the queue was full, not yet reported
	timer   *time.Timer // wakes the goroutine batchTimeout after the queue stops being empty
	closed  bool
	stopCtx context.Context // Shutdown's, set before quit is closed

	wake  chan struct{}     // capacity 1: a wake-up pending is enough
	flush chan flushRequest // ForceFlush
	quit  chan struct{}     // closed by Shutdown
	done  chan struct{}     // closed when the goroutine has exited
	// base is the context of the exports the goroutine starts itself; Shutdown cancels it when
	// its own deadline passes, so that a stuck export does not outlive it.
	base   context.Context
	cancel context.CancelFunc

	// spare is the other half of the double buffer: the goroutine's, while OnEnd fills queue.
	spare []sdktrace.ReadOnlySpan
}

type flushRequest struct {
	ctx  context.Context
	done chan error
}

var _ sdktrace.SpanProcessor = (*spanBatcher)(nil)

func newSpanBatcher(exp sdktrace.SpanExporter, maxQueue, maxBatch int, batchTimeout, exportTimeout time.Duration) *spanBatcher {
	b := &spanBatcher{
		exp: exp, maxQueue: maxQueue, maxBatch: maxBatch, batchTimeout: batchTimeout, exportTimeout: exportTimeout,
		wake:  make(chan struct{}, 1),
		flush: make(chan flushRequest),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	b.base, b.cancel = context.WithCancel(context.Background())
	go b.run()
	return b
}

// OnStart does nothing: only finished spans are exported.
func (b *spanBatcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a finished, sampled span; when the queue is full the span is dropped and counted.
func (b *spanBatcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if len(b.queue) >= b.maxQueue {
		b.dropped++
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, s)
	n := len(b.queue)
	if n == 1 {
		// Arming a timer wakes nobody; the goroutine runs when it fires.
		if b.timer == nil {
			b.timer = time.AfterFunc(b.batchTimeout, b.signal)
		} else {
			b.timer.Reset(b.batchTimeout)
		}
	}
	b.mu.Unlock()
	if n == b.maxBatch {
		b.signal()
	}
}

// signal wakes the goroutine to export what is queued.
func (b *spanBatcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (b *spanBatcher) run() {
	defer close(b.done)
	for {
		select {
		case <-b.wake:
			b.export(b.base)
		case r := <-b.flush:
			r.done <- b.export(r.ctx)
		case <-b.quit:
			b.mu.Lock()
			ctx := b.stopCtx
			b.mu.Unlock()
			b.export(ctx)
			return
		}
	}
}

// export sends everything queued, maxBatch spans per call to the exporter, each call bounded by
// exportTimeout and ctx. It returns the first export error.
func (b *spanBatcher) export(ctx context.Context) error {
	b.mu.Lock()
	spans := b.queue
	b.queue, b.spare = b.spare[:0], nil
	dropped := b.dropped
	b.dropped = 0
	b.mu.Unlock()

	if dropped > 0 {
		otel.Handle(fmt.Errorf("the trace export queue was full: %d spans dropped", dropped))
	}
	var first error
	for rest := spans; len(rest) > 0; {
		n := min(len(rest), b.maxBatch)
		ectx, cancel := context.WithTimeout(ctx, b.exportTimeout)
		err := b.exp.ExportSpans(ectx, rest[:n])
		cancel()
		if err != nil {
			otel.Handle(err)
			if first == nil {
				first = err
			}
		}
		rest = rest[n:]
	}
	clear(spans) // the exported spans are garbage now; don't keep them reachable
	b.spare = spans[:0]
	return first
}

// ForceFlush exports every span queued before the call, and waits for it (or for ctx).
func (b *spanBatcher) ForceFlush(ctx context.Context) error {
	r := flushRequest{ctx: ctx, done: make(chan error, 1)}
	select {
	case b.flush <- r:
	case <-b.done:
		return nil // shut down: nothing is queued
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued, stops the goroutine and shuts the exporter down, within ctx:
// the last export's context is ctx, so a stuck exporter is cancelled with it. Spans that end
// afterwards are discarded.
func (b *spanBatcher) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.stopCtx = ctx
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	close(b.quit)
	var err error
	select {
	case <-b.done:
	case <-ctx.Done():
		err = ctx.Err()
		b.cancel()
	}
	return errors.Join(err, b.exp.Shutdown(ctx))
}
