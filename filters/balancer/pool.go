package balancer

import (
	"sync"
	"time"
)

// connPool is a target's keep-alive connections: the idle ones in a stack, so that the most
// recently used is reused first and the others age out, and a bound on how many are open.
//
// It replaces fasthttp's HostClient, which the balancer used as a pool only: each of its
// AcquireConn/ReleaseConn pairs read the clock for the idle timestamps and went through
// HostClient's generic request plumbing. Here a request costs one short critical section to
// take a connection and one to give it back, and idle time is counted in reaper ticks.
type connPool struct {
	dial func(timeout time.Duration) (*upstreamConn, error)
	max  int

	mu      sync.Mutex
	idle    []*upstreamConn // oldest first; the last one is reused next
	open    int             // idle and in use
	tick    uint32          // reaper ticks so far
	reaping bool            // reaper is scheduled
	closed  bool
	reaper  *time.Timer
}

// reapEvery is the reaper's period. A connection idle at two consecutive ticks is closed, so an
// idle connection lives between one and two periods: 2 to 4 s, under the common upstream idle
// timeouts (Node.js: 5 s), so that the upstream rarely closes one under a request.
const reapEvery = 2 * time.Second

func newConnPool(max int, dial func(timeout time.Duration) (*upstreamConn, error)) *connPool {
	p := &connPool{dial: dial, max: max}
	p.reaper = time.AfterFunc(time.Hour, p.reap)
	p.reaper.Stop()
	return p
}

// get returns an idle connection, or dials a new one within timeout if fewer than max are open.
func (p *connPool) get(timeout time.Duration) (*upstreamConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	if p.open >= p.max {
		p.mu.Unlock()
		return nil, errNoFreeConns
	}
	p.open++
	p.mu.Unlock()
	c, err := p.dial(timeout)
	if err != nil {
		p.mu.Lock()
		p.open--
		p.mu.Unlock()
		return nil, err
	}
	return c, nil
}

// put gives back a connection that may carry another request.
func (p *connPool) put(c *upstreamConn) {
	c.idle()
	p.mu.Lock()
	if p.closed {
		p.open--
		p.mu.Unlock()
		c.Close()
		return
	}
	c.idleTick = p.tick
	p.idle = append(p.idle, c)
	start := !p.reaping
	p.reaping = true
	p.mu.Unlock()
	if start {
		p.reaper.Reset(reapEvery)
	}
}

// discard closes a connection taken with get that cannot be reused.
func (p *connPool) discard(c *upstreamConn) {
	c.Close()
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
}

// reap closes the connections that were already idle at the previous tick. It runs only while
// there are idle connections.
func (p *connPool) reap() {
	p.mu.Lock()
	p.tick++
	var stale []*upstreamConn
	kept := p.idle[:0]
	for _, c := range p.idle {
		if p.tick-c.idleTick >= 2 {
			stale = append(stale, c)
		} else {
			kept = append(kept, c)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	p.open -= len(stale)
	again := len(p.idle) > 0
	p.reaping = again
	p.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
	if again {
		p.reaper.Reset(reapEvery)
	}
}

// closeIdle closes the idle connections (a target found unhealthy or ejected); those in use are
// kept.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// close closes the idle connections, and those in use as they come back.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeIdle()
}

// size reports the open and idle connections (for tests).
func (p *connPool) size() (open, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open, len(p.idle)
}
