package wasm

import (
	"context"
	"time"
)

// The pool: idle instances wait in a channel sized pool_max; live counts every instance that
// exists (idle, pinned by a request, or being created), never more than pool_max.

// acquire returns an idle instance, creates one while fewer than pool_max exist, or waits up to
// pool_wait for one to come back.
func (f *Filter) acquire() (*instance, error) {
	select {
	case in := <-f.idle:
		return in, nil
	default:
	}
	if f.closed.Load() {
		return nil, errFilterClosed
	}
	if in, ok, err := f.grow(context.Background()); ok || err != nil {
		return in, err
	}
	f.m.poolWaits.Inc()
	if f.poolWait <= 0 {
		return nil, errPoolFull
	}
	t := time.NewTimer(f.poolWait)
	defer t.Stop()
	select {
	case in := <-f.idle:
		return in, nil
	case <-t.C:
		return nil, errPoolFull
	}
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
	in, err = f.newInstance(ctx)
	if err != nil {
		f.live.Add(-1)
		return nil, true, err
	}
	f.m.instances.Inc()
	return in, true, nil
}

// release returns an instance after its request. A broken one is closed and replaced in the
// background, so requests waiting for an instance are served without paying for it.
func (f *Filter) release(in *instance) {
	if in.broken || f.closed.Load() {
		f.discard(in)
		if !f.closed.Load() && !f.validate {
			f.replace()
		}
		return
	}
	select {
	case f.idle <- in:
	default:
		// Cannot happen (the channel holds pool_max), but never block a request on it.
		f.discard(in)
	}
}

func (f *Filter) discard(in *instance) {
	if in.timer != nil {
		in.timer.Stop()
	}
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
	f.live.Add(-1)
	f.m.instances.Dec()
}

// replace creates a fresh instance in the background for the pool. It runs under closeMu's
// WaitGroup so Close waits for it rather than racing it.
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
		select {
		case f.idle <- in:
		default:
			f.discard(in)
		}
	}()
}
