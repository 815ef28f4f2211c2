package engine

import (
	"context"
	"slices"
	"time"
)

// A stream of the engine's HTTP/2 server is its own context (the request's Context and
// ClientContext): it ends when the stream is reset or closed, the connection closes, or its
// handler returns. A context.WithCancel per stream, with the balancer's context.AfterFunc on it,
// cost about nine allocations per request (RATIONALE.md); the stream's own Done channel is made
// only when asked for, and AfterFunc (engine.AfterFunc below, or context.AfterFunc, which finds
// the method) keeps its functions in the stream.

// h2after is a function to run when a stream's context ends.
type h2after struct {
	f  func()
	id uint64
}

// Deadline: a stream's context has none (timeouts are kept by the handler).
func (st *h2cstream) Deadline() (time.Time, bool) { return time.Time{}, false }

// Value: a stream's context carries no values.
func (st *h2cstream) Value(any) any { return nil }

// Err is context.Canceled once the stream's context ended.
func (st *h2cstream) Err() error {
	if st.ended.Load() {
		return context.Canceled
	}
	return nil
}

// Done returns a channel closed when the stream's context ends.
func (st *h2cstream) Done() <-chan struct{} {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.doneCh == nil {
		st.doneCh = make(chan struct{})
		if st.ended.Load() {
			close(st.doneCh)
		}
	}
	return st.doneCh
}

// AfterFunc runs f on a goroutine of its own once the stream's context ends (at once if it has);
// stop unregisters it, reporting whether it stopped f from running (context.AfterFunc's terms).
func (st *h2cstream) AfterFunc(f func()) (stop func() bool) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.ended.Load() {
		go f()
		return h2afterRan
	}
	st.afterID++
	id := st.afterID
	st.afters = append(st.afters, h2after{f: f, id: id})
	return func() bool { return st.stopAfter(id) }
}

func h2afterRan() bool { return false }

func (st *h2cstream) stopAfter(id uint64) bool {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range st.afters {
		if a.id == id {
			st.afters = slices.Delete(st.afters, i, i+1)
			return true
		}
	}
	return false
}

// cancel ends the stream's context. Under mu.
func (st *h2cstream) cancel() {
	if st.ended.Swap(true) {
		return
	}
	if st.doneCh != nil {
		close(st.doneCh)
	}
	for _, a := range st.afters {
		go a.f()
	}
	clear(st.afters)
	st.afters = st.afters[:0]
}

// AfterFunc is context.AfterFunc, without its allocations for a request's ClientContext that is
// an HTTP/2 stream of the engine's own server (one for the returned stop function, against
// context.AfterFunc's four or five); any other context goes to context.AfterFunc.
func AfterFunc(ctx context.Context, f func()) (stop func() bool) {
	if st, ok := ctx.(*h2cstream); ok {
		return st.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}
