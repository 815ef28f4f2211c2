package telemetry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher queues finished telemetry items (spans, log records) and exports them in batches from
// background goroutines.
//
// The SDK's BatchSpanProcessor hands every span to its goroutine over a channel, which wakes that
// goroutine once per span: with a span per filter phase that is eight wake-ups per sampled
// request, each a few µs of scheduler and futex work on a busy proxy, which at a 1 % sample
// ratio cost more than the spans themselves. This one appends under a mutex and wakes its
// goroutine only when a batch is full, when the first queued item has waited the batch
// timeout, or to flush. Up to batchConfig.concurrency batches are exported at once, so one slow
// export (a collector retrying) does not stall the queue behind it.
//
// Every item is counted exactly once where its fate is decided (lossCounter): queued or
// dropped_queue_full at enqueue, exported or dropped_export_failed when its export returns,
// dropped_shutdown when Shutdown's deadline ends it.
type batcher[T any] struct {
	cfg         batchConfig
	export      func(context.Context, []T) error
	shutdownExp func(context.Context) error
	loss        *lossCounter

	mu     sync.Mutex
	queue  []T
	timer  *time.Timer // wakes the goroutine batchTimeout after the queue stops being empty
	closed bool
	// running holds the exports under way, each closing its channel when done.
	running map[chan struct{}]struct{}
	// spare are queue buffers whose batches have been exported, for the queue to take next: a
	// fresh buffer per drain cost more in allocation and GC than the spans it carried.
	spare [][]T

	wake  chan struct{}     // capacity 1: a wake-up pending is enough
	flush chan flushRequest // ForceFlush
	quit  chan struct{}     // closed by Shutdown
	done  chan struct{}     // closed when the goroutine has exited and its exports returned
	slots chan struct{}     // one token per export running
	// base is the context of every export; Shutdown cancels it when its own deadline passes,
	// so that a stuck export does not outlive it.
	base   context.Context
	cancel context.CancelFunc
}

// batchConfig bounds a batcher.
type batchConfig struct {
	maxQueue      int           // items waiting; more are dropped
	maxBatch      int           // items per export call
	batchTimeout  time.Duration // how long the first queued item waits for a batch to fill
	exportTimeout time.Duration // one export call, retries included
	concurrency   int           // export calls at once
}

type flushRequest struct {
	ctx  context.Context
	done chan error
}

func newBatcher[T any](cfg batchConfig, loss *lossCounter, export func(context.Context, []T) error, shutdown func(context.Context) error) *batcher[T] {
	cfg.concurrency = max(cfg.concurrency, 1)
	b := &batcher[T]{
		cfg: cfg, export: export, shutdownExp: shutdown, loss: loss,
		wake:  make(chan struct{}, 1),
		flush: make(chan flushRequest),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		slots: make(chan struct{}, cfg.concurrency),
	}
	b.base, b.cancel = context.WithCancel(context.Background())
	go b.run()
	loss.watch(b.done)
	return b
}

// add queues one item; when the queue is full, or the batcher is shut down, the item is dropped
// and counted.
func (b *batcher[T]) add(item T) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.loss.dropShutdown(1)
		return
	}
	if len(b.queue) >= b.cfg.maxQueue {
		b.mu.Unlock()
		b.loss.dropQueueFull()
		return
	}
	b.queue = append(b.queue, item)
	n := len(b.queue)
	if n == 1 {
		// Arming a timer wakes nobody; the goroutine runs when it fires.
		if b.timer == nil {
			b.timer = time.AfterFunc(b.cfg.batchTimeout, b.signal)
		} else {
			b.timer.Reset(b.cfg.batchTimeout)
		}
	}
	b.mu.Unlock()
	b.loss.queued.Inc()
	if n == b.cfg.maxBatch {
		b.signal()
	}
}

// addAll queues items under one lock; those that do not fit are dropped and counted.
func (b *batcher[T]) addAll(items []T) {
	if len(items) == 0 {
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.loss.dropShutdown(len(items))
		return
	}
	n0 := len(b.queue)
	room := max(b.cfg.maxQueue-n0, 0)
	take := min(room, len(items))
	b.queue = append(b.queue, items[:take]...)
	n := len(b.queue)
	if n0 == 0 && n > 0 {
		if b.timer == nil {
			b.timer = time.AfterFunc(b.cfg.batchTimeout, b.signal)
		} else {
			b.timer.Reset(b.cfg.batchTimeout)
		}
	}
	b.mu.Unlock()
	if take > 0 {
		b.loss.queued.Add(float64(take))
	}
	for range len(items) - take {
		b.loss.dropQueueFull()
	}
	// Wake the goroutine when this call filled a batch (n crossed a multiple of maxBatch).
	if n/b.cfg.maxBatch > n0/b.cfg.maxBatch {
		b.signal()
	}
}

// signal wakes the goroutine to export what is queued.
func (b *batcher[T]) signal() {
	select {
	case b.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (b *batcher[T]) run() {
	var all sync.WaitGroup // every export started
	defer close(b.done)
	for {
		select {
		case <-b.wake:
			b.drain(&all, nil)
		case r := <-b.flush:
			var mu sync.Mutex
			var first error
			b.drain(&all, func(err error) {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			})
			// Wait for every export under way, those an earlier wake-up started included: a
			// flush returns once what was queued before it has been exported.
			b.mu.Lock()
			running := make([]chan struct{}, 0, len(b.running))
			for ch := range b.running {
				running = append(running, ch)
			}
			b.mu.Unlock()
			go func() {
				for _, ch := range running {
					<-ch
				}
				mu.Lock()
				r.done <- first
				mu.Unlock()
			}()
		case <-b.quit:
			b.drain(&all, nil)
			all.Wait() // Shutdown cancels base at its deadline, which ends these
			return
		}
	}
}

// drain starts the export of everything queued, maxBatch items per call, at most
// cfg.concurrency calls at once: with every slot taken it waits, and meanwhile new items queue
// (or are dropped when the queue is full) rather than exports piling up. wg tracks the exports
// started; onErr, when set, sees their errors.
func (b *batcher[T]) drain(wg *sync.WaitGroup, onErr func(error)) {
	b.mu.Lock()
	items := b.queue
	// Batches are handed to concurrent exports: the queue gets another buffer, a spare one when
	// there is one; items goes back to the spares once its last batch has been exported.
	if n := len(b.spare); n > 0 {
		b.queue, b.spare = b.spare[n-1], b.spare[:n-1]
	} else {
		b.queue = make([]T, 0, min(max(cap(items), b.cfg.maxBatch), b.cfg.maxQueue))
	}
	b.mu.Unlock()
	left := new(atomic.Int64)
	left.Store(int64((len(items) + b.cfg.maxBatch - 1) / b.cfg.maxBatch))

	for rest := items; len(rest) > 0; {
		select {
		case b.slots <- struct{}{}:
		case <-b.base.Done():
			b.loss.dropShutdown(len(rest)) // Shutdown's deadline passed before these could start
			return
		}
		n := min(len(rest), b.cfg.maxBatch)
		batch := rest[:n:n]
		rest = rest[n:]
		wg.Add(1)
		done := make(chan struct{})
		b.mu.Lock()
		if b.running == nil {
			b.running = map[chan struct{}]struct{}{}
		}
		b.running[done] = struct{}{}
		b.mu.Unlock()
		go func() {
			defer wg.Done()
			defer func() {
				b.mu.Lock()
				delete(b.running, done)
				b.mu.Unlock()
				close(done)
			}()
			ctx, cancel := context.WithTimeout(b.base, b.cfg.exportTimeout)
			err := b.export(ctx, batch)
			cancel()
			<-b.slots
			switch {
			case err == nil:
				b.loss.exportedN(len(batch))
			case b.base.Err() != nil:
				b.loss.dropShutdown(len(batch))
			default:
				b.loss.exportFailed(len(batch), err)
			}
			if err != nil && onErr != nil {
				onErr(err)
			}
			if left.Add(-1) == 0 {
				b.recycle(items)
			}
		}()
	}
}

// recycle keeps buf, whose items have all been exported, as a spare queue buffer.
func (b *batcher[T]) recycle(buf []T) {
	clear(buf) // the exported items may be collected (or, span records, are back in their pool)
	b.mu.Lock()
	if len(b.spare) < maxSpareBuffers {
		b.spare = append(b.spare, buf[:0])
	}
	b.mu.Unlock()
}

// maxSpareBuffers bounds the queue buffers kept: one per export running and one filling.
const maxSpareBuffers = 4

// ForceFlush exports every item queued before the call, and waits for it (or for ctx).
func (b *batcher[T]) ForceFlush(ctx context.Context) error {
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
// at ctx's deadline the exports still running are cancelled and what they carried is counted as
// dropped_shutdown. Items that arrive afterwards are dropped the same way. The losses of the last
// interval are logged before it returns.
func (b *batcher[T]) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
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
		<-b.done // the cancelled exports return promptly
	}
	b.cancel()
	err = errors.Join(err, b.shutdownExp(ctx))
	b.loss.report()
	return err
}

// spanBatcher is the batcher of spans, as the trace SDK's span processor.
type spanBatcher struct {
	*batcher[sdktrace.ReadOnlySpan]
}

var _ sdktrace.SpanProcessor = spanBatcher{}

func newSpanBatcher(exp sdktrace.SpanExporter, cfg batchConfig, loss *lossCounter) spanBatcher {
	export := func(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
		if own, ok := exp.(*otlpHTTPExporter); ok {
			return own.export(ctx, spans, true) // frees the records once it has encoded them
		}
		err := exp.ExportSpans(ctx, spans)
		// The exporter has encoded the batch (the OTLP exporter copies it into its request
		// before returning): the observer's records go back for reuse.
		freeAll(spans)
		return err
	}
	return spanBatcher{newBatcher(cfg, loss, export, exp.Shutdown)}
}

// OnStart does nothing: only finished spans are exported.
func (spanBatcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a finished, sampled span.
func (b spanBatcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		b.add(s)
	}
}
