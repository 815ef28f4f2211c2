package wasm

import (
	"context"
	"slices"
	"sync"
	"time"
)

// pool holds a filter's idle instances as a stack: the most recently used instance serves the
// next request, so a lightly loaded filter keeps touching the same warm memory. Requests that
// find every instance busy queue as waiters and are handed an instance directly on release.
type pool struct {
	mu      sync.Mutex
	idle    []*instance
	waiters []chan *instance
}

// get pops an idle instance, or returns nil. (No defer: it runs on every request, and nothing
// between Lock and Unlock can panic.)
func (p *pool) get() *instance {
	p.mu.Lock()
	var in *instance
	if n := len(p.idle); n > 0 {
		in = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	return in
}

// put hands in to the longest-waiting request, or keeps it idle.
func (p *pool) put(in *instance) {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = slices.Delete(p.waiters, 0, 1)
		p.mu.Unlock()
		w <- in // buffered: never blocks
		return
	}
	p.idle = append(p.idle, in)
	p.mu.Unlock()
}

// wait queues for an instance for at most d; nil if none came.
func (p *pool) wait(d time.Duration) *instance {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		// One came back between the caller's get and now.
		in := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in
	}
	w := make(chan *instance, 1)
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case in := <-w:
		return in
	case <-t.C:
	}
	p.mu.Lock()
	if i := slices.Index(p.waiters, w); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	// A release chose this waiter just as it gave up: take the instance it sent.
	return <-w
}

// idleCount is the number of idle instances.
func (p *pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// getOldest takes the least recently used idle instance (the bottom of the stack), or nil.
func (p *pool) getOldest() *instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 {
		return nil
	}
	in := p.idle[0]
	p.idle = slices.Delete(p.idle, 0, 1)
	return in
}

// drain removes and returns every idle instance.
func (p *pool) drain() []*instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.idle
	p.idle = nil
	return out
}

// live counts every instance that exists (idle, pinned by a request, or being created), never
// more than pool_max.

// acquire returns an idle instance, creates one while fewer than pool_max exist, or waits up to
// pool_wait for one to come back.
func (f *Filter) acquire() (*instance, error) {
	if in := f.pool.get(); in != nil {
		return in, nil
	}
	if f.closed.Load() {
		return nil, errFilterClosed
	}
	if in, ok, err := f.grow(context.Background()); ok || err != nil {
		return in, err
	}
	f.m.poolWaits.Inc()
	if f.poolWait <= 0 {
		if in := f.pool.get(); in != nil {
			return in, nil
		}
		return nil, errPoolFull
	}
	if in := f.pool.wait(f.poolWait); in != nil {
		return in, nil
	}
	return nil, errPoolFull
}

// grow creates an instance if fewer than pool_max exist; ok is false when the pool is full.
func (f *Filter) grow(ctx context.Context) (in *instance, ok bool, err error) {
	for {
		n := f.live.Load()
		if n >= f.poolMax {
			return nil, false, nil
		}
		if f.live.CompareAndSwap(n, n+1) {
			break
		}
	}
	// Instantiating costs CPU (a Go guest's runtime start takes milliseconds): at most one per
	// core at a time, so a burst of requests on an empty pool does not start dozens at once and
	// push each one past the start deadline, which only starts counting once it gets its turn.
	f.starting <- struct{}{}
	in, err = f.newInstance(ctx)
	<-f.starting
	if err != nil {
		f.live.Add(-1)
		_ = f.closeRuntimeIfUnused()
		return nil, true, err
	}
	f.m.instances.Inc()
	f.noteMemory(in) // usage.go
	return in, true, nil
}

// release returns an instance after its request. A broken one is closed and replaced in the
// background, so requests waiting for an instance are served without paying for it.
func (f *Filter) release(in *instance) {
	if in.iso != nil && !in.broken && !in.iso.restore() {
		// It grew its memory (see isolatedInstance.restore): start afresh.
		in.broken = true
		f.log.Debug("wasm instance retired: its request grew the memory, which isolation cannot undo", "module", f.module)
	}
	if in.broken || f.closed.Load() {
		f.discard(in)
		if !f.closed.Load() && !f.validate {
			f.replace()
		}
		return
	}
	f.noteMemory(in) // usage.go
	f.pool.put(in)
}

func (f *Filter) discard(in *instance) {
	if in.timer != nil {
		in.timer.Stop()
	}
	in.stdout.flush()
	in.stderr.flush()
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
	f.untrack(in)
	f.forgetMemory(in) // usage.go
	f.live.Add(-1)
	f.m.instances.Dec()
	if err := f.closeRuntimeIfUnused(); err != nil {
		f.log.Warn("closing the wasm runtime", "err", err)
	}
}

// replace creates a fresh instance in the background for the pool. Close waits for it rather
// than racing it.
func (f *Filter) replace() {
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	if f.closed.Load() {
		return
	}
	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		in, ok, err := f.grow(context.Background())
		if err != nil {
			f.log.Error("replacing a failed wasm instance", "err", err)
			return
		}
		if !ok {
			return // the pool filled up meanwhile
		}
		if f.closed.Load() {
			f.discard(in)
			return
		}
		f.pool.put(in)
	}()
}
