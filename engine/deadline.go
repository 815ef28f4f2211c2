package engine

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The server's timeouts (read_timeout, write_timeout, idle_timeout) are kept by the client
// connections themselves, off the socket until nearly due.
//
// Left to fasthttp, a keep-alive connection's deadlines move three times per request (the idle
// wait, the request read, the response write), each a clock read (65 ns on this project's VMs)
// and, on a socket, another clock read and a timer-heap update in the runtime poller, although
// almost no deadline ever fires: the next request moves it again long before. Measured under load,
// that was 4 % of the gateway's CPU per request (more than its own share, because a slower proxy
// also batches less in the kernel).
//
// So fasthttp gets no timeouts, and clientConn follows its own request cycle instead: a new
// connection waits for its first byte (first_byte_timeout), reading a request (read_timeout from
// its first byte), writing the response (write_timeout from its first write), idle until the next
// request's first byte (idle_timeout, or idle_timeout_under_pressure: conns.go).
// Each change of phase is an atomic store of a deadline computed on the watchdog's clock (no
// clock read). A watchdog ticking a few times a second puts a deadline on the socket once it is
// less than two ticks away (a nearer one goes on at once); from then on the socket's own timer
// fires it, and a deadline moved away again is taken back off. While the watchdog runs on time
// its clock lags by at most a tick, so each timeout is counted from up to a tick (at most a
// tenth of the shortest timeout, and 250 ms) late: a client never gets less than its timeout. On
// a machine so loaded that the watchdog itself runs late, its clock lags further, and a timeout
// that starts meanwhile is cut short by the excess (measured: up to 90 ms beyond a 30 ms tick at
// load 15), except a new connection's first one, which is counted from a clock read (one per
// connection, not per request).
//
// A deadline set explicitly (a hijacked WebSocket tunnel sets its own; fasthttp clears them when
// it hands a connection over) ends the phases: from then on the connection's deadlines are exactly
// the ones set, kept off the socket the same way.

// The phases of a client connection.
const (
	phaseReading uint32 = iota // a request (or a new connection's first): read_timeout
	phaseWriting               // the response: write_timeout
	phaseIdle                  // waiting for the next request: idle_timeout
	phaseManual                // deadlines set explicitly
	phaseNew                   // a new connection before its first byte: first_byte_timeout
)

// deadlineWatch is one listener's watchdog over its connections' deadlines, and the server's
// timeouts (ns; 0: none).
type deadlineWatch struct {
	tick              time.Duration
	read, write, idle int64
	firstByte         int64        // first_byte_timeout; 0: a new connection starts reading under read
	now               atomic.Int64 // the watchdog's clock (ns since monoBase), at most one tick behind

	// The connection-flood defences (conns.go): the listener's limits, and the idle timeout
	// under pressure (ns; 0: none).
	limits       *connLimits
	pressureIdle int64
	log          *slog.Logger
	// The minimum rate at which a client must read a response being written (writerate.go):
	// bytes per second over windows of rateWindow ns; 0: none.
	minRate, rateWindow int64
	// Idle connections park after parkAfter (ns; 0: never), and serve serves a parked one again
	// (idlepark.go).
	parkAfter int64
	serve     func(net.Conn) error
	// parkWave counts the connections asked to park since the last collection, the last at
	// lastParkAt (idlepark.go); only the watchdog's goroutine touches them.
	parkWave   int
	lastParkAt int64

	// Idle connections found by the last sweep, oldest first, for evictOldestIdle; the
	// buffers they are kept in.
	candMu            sync.Mutex
	cands             []idleCand
	sweptEmpty        int64 // the clock's tick when a sweep last found no candidate
	candBuf, sweepBuf []idleCand

	mu     sync.Mutex
	conns  map[*clientConn]struct{}
	closed bool // the listener is closed: stop once the last connection is
	done   chan struct{}
}

// watchTick picks the watchdog's period for the shortest timeout a connection gets: a tenth of
// it, within [5 ms, 250 ms].
func watchTick(shortest time.Duration) time.Duration {
	return min(max(shortest/10, 5*time.Millisecond), 250*time.Millisecond)
}

// newDeadlineWatch starts the watchdog for connections with these timeouts (0: none); tick is
// watchTick of the shortest.
func newDeadlineWatch(tick, read, write, idle time.Duration) *deadlineWatch {
	w := newWatch(tick, read, write, idle)
	w.start()
	return w
}

// newWatch makes a watchdog without starting it: the caller sets the other fields, then calls
// start.
func newWatch(tick, read, write, idle time.Duration) *deadlineWatch {
	return &deadlineWatch{tick: tick, read: int64(read), write: int64(write), idle: int64(idle),
		conns: map[*clientConn]struct{}{}, done: make(chan struct{})}
}

func (w *deadlineWatch) start() {
	w.now.Store(int64(time.Since(monoBase)))
	go w.run()
}

func (w *deadlineWatch) run() {
	defer close(w.done)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var batch []*clientConn
	for range t.C {
		now := int64(time.Since(monoBase))
		w.now.Store(now)
		w.mu.Lock()
		if w.closed && len(w.conns) == 0 {
			w.mu.Unlock()
			return
		}
		batch = batch[:0]
		for c := range w.conns {
			batch = append(batch, c)
		}
		w.mu.Unlock()
		for _, c := range batch {
			c.rd.check(c, false, now)
			c.wd.check(c, true, now)
			if since := c.waiting.Load(); since > 0 && now-since > int64(w.tick) {
				c.poke(since)
			}
			if w.minRate > 0 {
				w.checkRate(c, now)
			}
			if w.parkAfter > 0 {
				w.maybePark(c, now)
			}
		}
		w.pressureSweep(batch, now)
		if w.parkAfter > 0 {
			w.collectAfterWave(now)
		}
		clear(batch) // don't keep closed connections reachable until the next tick
	}
}

// add wraps a newly accepted connection: it waits for its first byte under first_byte_timeout,
// or, without one, starts reading its first request.
func (w *deadlineWatch) add(nc net.Conn) *clientConn {
	c := &clientConn{Conn: nc, watch: w}
	// Counted from the clock itself, read once per connection: a starved watchdog's clock can
	// lag by more than a tick (120 ms with a 30 ms tick at load 15), and a new connection's
	// first timeout counted from it would be cut short by the excess.
	now := int64(time.Since(monoBase))
	if w.firstByte > 0 {
		c.phase.Store(phaseNew)
		_ = c.rd.setAt(c, false, w.afterFrom(now, w.firstByte))
	} else {
		c.phase.Store(phaseReading)
		_ = c.rd.setAt(c, false, w.afterFrom(now, w.read))
	}
	w.mu.Lock()
	w.conns[c] = struct{}{}
	w.mu.Unlock()
	return c
}

func (w *deadlineWatch) remove(c *clientConn) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
}

// close lets the watchdog stop once the connections still open are closed.
func (w *deadlineWatch) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// monoBase is the origin of the watchdog's clock. Deadlines are kept as durations since it, on
// the monotonic clock as the runtime poller keeps them: a wall-clock step must not delay them.
var monoBase = time.Now()

// after is the deadline d from now on the watchdog's clock, counted from its last tick so that
// the lag only ever lengthens a timeout; 0 for no timeout.
func (w *deadlineWatch) after(d int64) int64 {
	return w.afterFrom(w.now.Load(), d)
}

// afterFrom is after counted from now, a time on the watchdog's clock or one read just before.
// The tick is added either way, so that idleSince can work out when a wait began.
func (w *deadlineWatch) afterFrom(now, d int64) int64 {
	if d <= 0 {
		return 0
	}
	return now + int64(w.tick) + d
}

// enter moves c to a phase of its request cycle and sets the deadlines that phase has. Only the
// connection's own goroutine calls it; a manual connection stays manual.
func (c *clientConn) enter(ph uint32) {
	old := c.phase.Load()
	if old == phaseManual || !c.phase.CompareAndSwap(old, ph) {
		return // set explicitly meanwhile: the explicit deadlines stand
	}
	w := c.watch
	switch ph {
	case phaseReading:
		if (old == phaseIdle || old == phaseNew) && c.evicted.Load() {
			return // closed to make room (conns.go): the past read deadline stays
		}
		_ = c.rd.setAt(c, false, w.after(w.read))
	case phaseWriting:
		_ = c.wd.setAt(c, true, w.after(w.write))
	case phaseIdle:
		_ = c.wd.setAt(c, true, 0)
		_ = c.rd.setAt(c, false, w.after(w.idle))
	}
}

// soon is how near a deadline must be to go on the socket now.
func (w *deadlineWatch) soon(now int64) int64 { return now + 2*int64(w.tick) }

// applying marks a deadline the watchdog is putting on the socket: a concurrent set then takes
// the lock and settles it again. pokedOnSock marks the past deadline of a poke, which only the
// connection's own goroutine takes off (unpoke).
const (
	applying    = -1
	pokedOnSock = -2
)

// poked is clientConn.waiting once the watchdog has ended the wait.
const poked = -1

// A read that sends a held response (clientConn.recv) waits only for data that arrives after the
// response is written. A request that arrived before (a pipelining client's, or its end of input)
// would go unnoticed, so the watchdog ends any such wait that has lasted more than a tick: a past
// deadline on the socket wakes it, and the connection takes it off again and reads the usual
// way. A busy connection's next request comes long before; an idle one pays this once per idle
// spell.
func (c *clientConn) poke(since int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting.CompareAndSwap(since, poked) {
		c.rd.onSock.Store(pokedOnSock)
		_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

// unpoke puts the socket's read deadline back as it was before a poke.
func (c *clientConn) unpoke() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiting.Store(0)
	_ = c.rd.apply(c, false, c.watch.now.Load())
}

// aLongTimeAgo is a deadline long past: setting it ends a wait at once.
var aLongTimeAgo = time.Unix(1, 0)

// lazyDeadline is one direction's deadline of a clientConn.
type lazyDeadline struct {
	want   atomic.Int64 // what the connection was asked for (ns since monoBase, at least 1; 0: none)
	onSock atomic.Int64 // what the socket has: 0 (none), applying, or a deadline
}

// set records t. The socket is only touched when t is nearly due or a deadline is on it; the
// common case, a deadline moved further out, is two atomic operations.
//
// Why no lock on the fast path: set stores want, then loads onSock; apply stores onSock, then
// loads want (both sequentially consistent). Either set sees applying or a deadline and settles
// under the lock, or apply's load comes after set's store and sees the new want.
func (d *lazyDeadline) set(c *clientConn, write bool, t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = max(int64(t.Sub(monoBase)), 1) // a deadline already past stays past
	}
	return d.setAt(c, write, ns)
}

// setAt is set with the deadline in ns since monoBase (0: none).
func (d *lazyDeadline) setAt(c *clientConn, write bool, ns int64) error {
	d.want.Store(ns)
	if d.onSock.Load() == 0 && (ns == 0 || ns > c.watch.soon(c.watch.now.Load())) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return d.apply(c, write, c.watch.now.Load())
}

// check is the watchdog's: put the deadline on the socket when it is nearly due.
func (d *lazyDeadline) check(c *clientConn, write bool, now int64) {
	want := d.want.Load()
	if want == 0 || want > c.watch.soon(now) {
		return
	}
	if on := d.onSock.Load(); on == want || on == pokedOnSock {
		return
	}
	c.mu.Lock()
	_ = d.apply(c, write, now) // an error means the connection is closing; its I/O reports it
	c.mu.Unlock()
}

// apply makes the socket's deadline agree with want: on it when nearly due, else off. c.mu held.
func (d *lazyDeadline) apply(c *clientConn, write bool, now int64) error {
	d.onSock.Store(applying)
	want := d.want.Load()
	var t time.Time
	var on int64
	if want != 0 && want <= c.watch.soon(now) {
		t, on = monoBase.Add(time.Duration(want)), want
	}
	var err error
	if write {
		err = c.Conn.SetWriteDeadline(t)
	} else {
		err = c.Conn.SetReadDeadline(t)
	}
	d.onSock.Store(on)
	return err
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	if c.watch == nil {
		return c.Conn.SetReadDeadline(t)
	}
	c.phase.Store(phaseManual)
	return c.rd.set(c, false, t)
}

func (c *clientConn) SetWriteDeadline(t time.Time) error {
	if c.watch == nil {
		return c.Conn.SetWriteDeadline(t)
	}
	c.phase.Store(phaseManual)
	return c.wd.set(c, true, t)
}

func (c *clientConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Close closes the connection, after writing what a response left held for a next read that
// will not come (fasthttp closes a connection after a response that ends it).
func (c *clientConn) Close() error {
	if c.park.CompareAndSwap(parkPending, parkWaiting) {
		// fasthttp ended its loop for the connection to park (idlepark.go): it stays open.
		go c.parkedWait()
		return nil
	}
	if c.held.Load() != nil {
		// Close may run on another goroutine, so the lazy deadline is not at hand: the socket
		// gets the write timeout directly.
		if c.watch != nil && c.watch.write > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Duration(c.watch.write)))
		}
		_ = c.flushHeld()
	}
	if c.watch != nil {
		c.watch.remove(c)
	}
	if c.limits != nil {
		c.limits.release(c)
	}
	c.releaseHeld()
	if c.linger.Load() && closeLingering(c.Conn) {
		return nil
	}
	return c.Conn.Close()
}
