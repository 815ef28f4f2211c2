package balancer

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// h2Pool is a target's connections for an HTTP/2 upstream: net/http ClientConns, each carrying
// as many requests at once as the target's SETTINGS_MAX_CONCURRENT_STREAMS allows (one for a
// connection on which "auto" negotiated HTTP/1.1), and never more than max of them open.
//
// It is the balancer's own rather than http.Transport's: the Transport keeps its
// MaxConnsPerHost for HTTP/2 only until every connection is at its stream limit, then forgets
// one connection from its count and dials another, so under load the bound does not hold.
type h2Pool struct {
	rt     *http.Transport // dials and sets up connections (NewClientConn), never pools them
	scheme string
	addr   string
	max    int
	wait   time.Duration // how long a request waits for a free stream when max are open

	mu      sync.Mutex
	conns   []*http.ClientConn
	dialing int
	// closed is also read by the connections' state hook, which net/http may call from
	// inside Reserve (under mu): the hook takes no lock.
	closed  atomic.Bool
	freed   chan struct{} // a stream or connection freed (the connections' state hooks)
	waiters atomic.Int32  // requests waiting on freed

	// The reaper closes connections found without requests at two ticks in a row: an HTTP/1.1
	// connection that "auto" negotiated has no idle timer of its own (an HTTP/2 one has,
	// IdleConnTimeout, which closes it first).
	reaper  *time.Timer
	reaping bool // guarded by mu
	// hooked: the connections have the state hook (changed), guarded by mu. They get it when
	// a request first has to wait for a stream, or the pool closes, and keep it: until then
	// net/http skips the hook's bookkeeping on every stream's start and end (its lock, the
	// connection's counts under the connection's lock, a goroutine when the state moved while
	// the hook ran).
	hooked bool
	idle   map[*http.ClientConn]bool
	// wires are the cleartext connections' h2Wires (h2wire.go), for a request body that may
	// wait to flush its HEADERS first.
	wires map[*http.ClientConn]*h2Wire
}

// h2ReapEvery is the reaper's period: an idle connection lives one to two of them.
const h2ReapEvery = h2IdleTimeout

func newH2Pool(rt *http.Transport, scheme, addr string, max int, wait time.Duration) *h2Pool {
	p := &h2Pool{rt: rt, scheme: scheme, addr: addr, max: max, wait: wait, freed: make(chan struct{}, 1),
		idle: map[*http.ClientConn]bool{}, wires: map[*http.ClientConn]*h2Wire{}}
	p.reaper = time.AfterFunc(time.Hour, p.reap)
	p.reaper.Stop()
	return p
}

// reap closes the connections that were idle at the previous tick too.
func (p *h2Pool) reap() {
	p.mu.Lock()
	var stale []*http.ClientConn
	live := p.conns[:0]
	for _, cc := range p.conns {
		switch {
		case cc.InFlight() > 0 || cc.Err() != nil:
			delete(p.idle, cc)
			if cc.Err() == nil {
				live = append(live, cc)
			} else {
				delete(p.wires, cc)
			}
		case p.idle[cc]:
			delete(p.idle, cc)
			delete(p.wires, cc)
			stale = append(stale, cc)
		default:
			p.idle[cc] = true
			live = append(live, cc)
		}
	}
	clear(p.conns[len(live):])
	p.conns = live
	p.reaping = len(p.conns) > 0 && !p.closed.Load()
	if p.reaping {
		p.reaper.Reset(h2ReapEvery)
	}
	p.mu.Unlock()
	for _, cc := range stale {
		_ = cc.Close()
	}
}

// get reserves a stream on a connection, dialling one if fewer than max are open; when none has
// a free stream and max are open, it waits up to p.wait, then fails with errNoFreeConns. The
// caller makes exactly one RoundTrip (or Release) on the connection.
func (p *h2Pool) get(ctx context.Context) (*http.ClientConn, error) {
	var tm *time.Timer
	for {
		p.mu.Lock()
		p.dropDeadLocked()
		// The most recently opened first: older connections drain and close when idle.
		for i := len(p.conns) - 1; i >= 0; i-- {
			if p.conns[i].Reserve() == nil {
				cc := p.conns[i]
				p.mu.Unlock()
				if p.waiters.Load() > 0 {
					p.wake() // one wake-up frees one waiter: pass it on, there may be room
				}
				return cc, nil
			}
		}
		if len(p.conns)+p.dialing < p.max {
			p.dialing++
			p.mu.Unlock()
			var slot wireSlot // the dial's h2Wire, for a cleartext connection
			cc, err := p.rt.NewClientConn(context.WithValue(ctx, wireSlotKey{}, &slot), p.scheme, p.addr)
			p.mu.Lock()
			p.dialing--
			if err != nil {
				p.mu.Unlock()
				p.wake() // another waiter may dial in its place
				return nil, err
			}
			p.conns = append(p.conns, cc)
			if slot.w != nil {
				p.wires[cc] = slot.w
			}
			// A retired target (closed) still serves a request that chose it before: its
			// connection closes when its last stream ends (changed).
			if !p.reaping && !p.closed.Load() {
				p.reaping = true
				p.reaper.Reset(h2ReapEvery)
			}
			hook := p.hooked || p.closed.Load()
			p.mu.Unlock()
			if hook {
				cc.SetStateHook(p.changed)
			}
			p.wake() // a new connection has streams for the waiters too
			continue
		}
		if !p.hooked {
			p.hookAllLocked()
			p.mu.Unlock()
			continue // a stream that ended before the hooks were set woke no one: look again
		}
		p.mu.Unlock()
		if tm == nil {
			tm = time.NewTimer(p.wait)
			defer tm.Stop()
			p.waiters.Add(1)
			defer p.waiters.Add(-1)
		}
		select {
		case <-p.freed:
		case <-tm.C:
			return nil, errNoFreeConns
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wire returns cc's h2Wire, or nil (a TLS connection).
func (p *h2Pool) wire(cc *http.ClientConn) *h2Wire {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wires[cc]
}

// dropDeadLocked forgets the connections that can carry nothing more.
func (p *h2Pool) dropDeadLocked() {
	live := p.conns[:0]
	for _, cc := range p.conns {
		if cc.Err() == nil {
			live = append(live, cc)
		} else {
			delete(p.idle, cc)
			delete(p.wires, cc)
		}
	}
	clear(p.conns[len(live):])
	p.conns = live
}

// changed is the connections' state hook (once hooked): a stream ended or was reserved, or the
// connection ended. It may run inside Reserve, under p.mu: it takes no lock.
func (p *h2Pool) changed(cc *http.ClientConn) {
	if p.closed.Load() && cc.InFlight() == 0 {
		go cc.Close() // the last stream of a retired target's connection ended
	}
	p.wake()
}

func (p *h2Pool) wake() {
	select {
	case p.freed <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// closeIdle closes the connections that carry no request (a target found unhealthy or ejected).
func (p *h2Pool) closeIdle() {
	p.mu.Lock()
	var idle []*http.ClientConn
	live := p.conns[:0]
	for _, cc := range p.conns {
		if cc.InFlight() == 0 {
			idle = append(idle, cc)
			delete(p.idle, cc)
			delete(p.wires, cc)
		} else {
			live = append(live, cc)
		}
	}
	clear(p.conns[len(live):])
	p.conns = live
	p.mu.Unlock()
	for _, cc := range idle {
		_ = cc.Close()
	}
}

// close closes the idle connections now and the others when their last request ends, as it
// does those a request still in flight on the old target set makes.
func (p *h2Pool) close() {
	p.closed.Store(true)
	p.reaper.Stop()
	p.mu.Lock()
	p.hookAllLocked() // a connection still busy closes after its last stream (changed)
	p.mu.Unlock()
	p.closeIdle()
}

// hookAllLocked gives every connection the state hook, once. SetStateHook may run the hook at
// once, which takes no lock. Under mu.
func (p *h2Pool) hookAllLocked() {
	if p.hooked {
		return
	}
	p.hooked = true
	for _, cc := range p.conns {
		cc.SetStateHook(p.changed)
	}
}

// size reports the open connections (for tests).
func (p *h2Pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropDeadLocked()
	return len(p.conns)
}

// streamError has the fields of net/http's HTTP/2 stream error, which errors.As fills in.
type streamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e streamError) Error() string { return "HTTP/2 stream error" }

const errCodeRefusedStream = 0x7

// unprocessed reports whether err says the target never processed the request, so that it may
// be sent again whatever its method (RFC 9113 §8.7): the stream was refused, or the connection
// was going away (GOAWAY) before the target took it. net/http's own Transport retries these;
// its ClientConn reports them.
func unprocessed(err error) bool {
	var se streamError
	if errors.As(err, &se) {
		return se.Code == errCodeRefusedStream
	}
	// The ClientConn's own errors are unexported values: their texts are all there is.
	switch err.Error() {
	case "http2: Transport received Server's graceful shutdown GOAWAY", "http2: client conn not usable":
		return true
	}
	return false
}
