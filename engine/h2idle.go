package engine

import "net"

// An HTTP/2 connection keeps no request cycle for the deadline watch to follow (accept.go), so
// its idleness is tracked by the handler instead: a connection none of whose streams is being
// served is idle since its last stream ended (or since it was classified). Idle HTTP/2
// connections are candidates, with idle HTTP/1.x ones, for being closed to make room at
// max_connections and, under pressure, after idle_timeout_under_pressure (conns.go); otherwise
// net/http closes them after idle_timeout.

// clientConnOf returns the server's own connection under nc (a *tls.Conn over it, or itself),
// or nil.
func clientConnOf(nc net.Conn) *clientConn {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn()
	}
	cc, _ := nc.(*clientConn)
	return cc
}

// h2Ready marks a connection handed to the HTTP/2 server: idle until its first stream.
func (c *clientConn) h2Ready() {
	if c.watch != nil {
		c.h2Idle.Store(max(c.watch.now.Load(), 1))
	}
}

// h2Begin marks a stream being served: the connection is busy.
func (c *clientConn) h2Begin() {
	c.h2Streams.Add(1)
	for {
		at := c.h2Idle.Load()
		if at <= 0 || c.h2Idle.CompareAndSwap(at, 0) {
			return // busy already, or evicted (it stays so)
		}
	}
}

// h2End marks a stream served; the last one makes the connection idle.
func (c *clientConn) h2End() {
	if c.h2Streams.Add(-1) != 0 || c.watch == nil {
		return
	}
	now := max(c.watch.now.Load(), 1)
	if c.h2Idle.CompareAndSwap(0, now) && c.h2Streams.Load() > 0 {
		// A stream began meanwhile (its h2Begin may have run before this mark).
		c.h2Idle.CompareAndSwap(now, 0)
	}
}

// evictH2 closes an idle HTTP/2 connection to make room: a past read deadline ends its
// server's read loop, which closes it. It fails if a stream began meanwhile.
func (w *deadlineWatch) evictH2(c *clientConn) bool {
	at := c.h2Idle.Load()
	if at <= 0 || !c.h2Idle.CompareAndSwap(at, -1) {
		return false
	}
	c.evicted.Store(true)
	c.mu.Lock()
	c.rd.want.Store(1)
	_ = c.rd.apply(c, false, w.now.Load())
	c.mu.Unlock()
	if w.limits != nil {
		w.limits.release(c)
	}
	return true
}
