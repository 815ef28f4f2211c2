package engine

import (
	"io"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
)

// An idle keep-alive connection served by fasthttp keeps, for as long as it stays open, a
// goroutine blocked in its read (8 KiB of stack once it has served a request), fasthttp's
// RequestCtx, and its read buffer: max_header_bytes, 16 KiB by default, which fasthttp keeps from
// a connection's first request on because request bodies stream (StreamRequestBody). That was
// 19–21 KiB per idle connection, against nginx's 0.6.
//
// So a connection idle for longer than idleParkAfter is parked: the watchdog (deadline.go) ends
// its read with a past deadline; Read answers fasthttp with the end of the connection, at a
// request boundary with nothing buffered; fasthttp ends its serving loop and gives its buffers and
// RequestCtx back to its pools, and then closes the connection, which Close turns into the wait
// of a new goroutine (the least stack there is) for the socket to become readable, holding no
// buffer. Its first bytes go into a pooled read-ahead buffer and fasthttp serves the connection
// again (Server.ServeConn) from them, with one read system call as before.
//
// Busy connections never park: a connection is only asked to once it has been idle for
// idleParkAfter, and the request path gains one atomic load (noPark, in startRequest). An idle
// spell longer than that costs a goroutine start and fasthttp's per-connection set-up. A
// connection whose body or response streamed, or that answered 100 Continue, does not park until
// its next request: a read that looks idle may be in the middle of a body.
//
// Only plain-TCP HTTP/1.x connections park: a TLS connection's state lives in crypto/tls, and an
// HTTP/2 one is net/http's.

// idleParkAfter is how long a connection waits for its next request before it parks;
// parkAfterTest, when not 0, replaces it (ns, for the tests).
const idleParkAfter = time.Second

var parkAfterTest atomic.Int64

func parkAfter() int64 {
	if d := parkAfterTest.Load(); d != 0 {
		return d
	}
	return int64(idleParkAfter)
}

// The states of clientConn.park.
const (
	parkNone    uint32 = iota // serving, or idle for less than idleParkAfter
	parkAsked                 // the watchdog has ended the connection's read to park it
	parkPending               // Read has ended fasthttp's loop; its Close parks the connection
	parkWaiting               // parked: a goroutine waits for the next request's bytes
)

// maybePark is the watchdog's: it asks c to park when it has been idle long enough.
func (w *deadlineWatch) maybePark(c *clientConn, now int64) {
	if c.phase.Load() != phaseIdle || c.park.Load() != parkNone || c.waiting.Load() != 0 || c.noPark.Load() {
		return
	}
	since, ok := w.idleSince(c)
	if !ok || now-since < w.parkAfter || c.h2Idle.Load() != 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.park.CompareAndSwap(parkNone, parkAsked) {
		// A past deadline wakes the read, as a poke does; parkRead puts the real one back.
		c.rd.onSock.Store(pokedOnSock)
		_ = c.Conn.SetReadDeadline(aLongTimeAgo)
		w.parkWave++
		w.lastParkAt = now
	}
}

// What parked connections give back (fasthttp's read buffers and RequestCtxs in its sync.Pools,
// the stacks of its idle workers) is only freed by the runtime's next collections: a sync.Pool
// keeps its items through one, a stack shrinks by half at each, and an idle gateway collects
// every two minutes. So after a wave of parking (parkWaveMin connections or more, then none
// for parkWaveQuiet) the watchdog has the runtime collect twice and return the freed memory to
// the operating system, at most once per parkCollectEvery in the whole process. A collection
// runs concurrently with requests, and such a wave means the gateway has just gone quiet.
const (
	parkWaveMin      = 1024
	parkWaveQuiet    = 500 * time.Millisecond
	parkCollectEvery = 30 * time.Second
)

// lastParkCollect is when (the watchdog's clock) the last collection after a wave began; 0: none.
var lastParkCollect atomic.Int64

// collectAfterWave is the watchdog's, once per tick.
func (w *deadlineWatch) collectAfterWave(now int64) {
	if w.parkWave < parkWaveMin || now-w.lastParkAt < int64(parkWaveQuiet) {
		return
	}
	w.parkWave = 0
	last := lastParkCollect.Load()
	if last != 0 && now-last < int64(parkCollectEvery) || !lastParkCollect.CompareAndSwap(last, now) {
		return
	}
	go func() {
		runtime.GC()         // the pools' items move to their victim caches
		debug.FreeOSMemory() // freed with them, and returned
	}()
}

// parkRead is Read's when a read failed while the watchdog had asked c to park (ph is the phase
// the read began in): true when c is to park, and Read ends fasthttp's loop. Otherwise a request
// arrived meanwhile, and the read is to be made again.
func (c *clientConn) parkRead(ph uint32) bool {
	c.mu.Lock()
	_ = c.rd.apply(c, false, c.watch.now.Load()) // the idle deadline, off the socket unless near
	c.mu.Unlock()
	// Plain TCP only (c.ex): the parked wait reads the socket itself.
	if ph == phaseIdle && c.phase.Load() == phaseIdle && len(c.pending) == 0 && c.held.Load() == nil && c.ex.Ready() {
		return c.park.CompareAndSwap(parkAsked, parkPending)
	}
	c.park.Store(parkNone)
	return false
}

// parkedWait is the parked connection's goroutine: it waits for the next request's first bytes
// and has fasthttp serve the connection again, or closes it when the wait fails (the client
// closed it, idle_timeout, eviction, shutdown).
func (c *clientConn) parkedWait() {
	var s *[]byte
	var n int
	var rerr error
	err := c.ex.Wait(func(fd int) bool {
		s = readAheadPool.Get().(*[]byte)
		n, rerr = syscall.Read(fd, *s)
		for rerr == syscall.EINTR {
			n, rerr = syscall.Read(fd, *s)
		}
		if rerr == syscall.EAGAIN {
			readAheadPool.Put(s) // nothing held while waiting
			s = nil
			return false
		}
		return true
	})
	c.park.Store(parkNone)
	if err != nil || rerr != nil || n <= 0 {
		if s != nil {
			readAheadPool.Put(s)
		}
		_ = c.Close()
		return
	}
	c.stash, c.pending = s, (*s)[:n]
	_ = c.watch.serve(c) // closes c when done, or parks it again
}

// closeParked closes the parked connections (Server.Shutdown: fasthttp no longer knows them).
func (w *deadlineWatch) closeParked() {
	var parked []*clientConn
	w.mu.Lock()
	for c := range w.conns {
		if c.park.Load() == parkWaiting {
			parked = append(parked, c)
		}
	}
	w.mu.Unlock()
	for _, c := range parked {
		_ = c.Close()
	}
}

// closeParked closes every parked connection of the server's listeners.
func (s *Server) closeParked() {
	s.limitsMu.Lock()
	ws := s.parking
	s.limitsMu.Unlock()
	for _, w := range ws {
		w.closeParked()
	}
}

// errParked is what Read returns to end fasthttp's loop for a connection that parks: the end of
// input at a request boundary, which fasthttp takes as a keep-alive connection closing.
var errParked = io.EOF
