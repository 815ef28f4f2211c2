package engine

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/engine/rawio"
)

// resilientListener keeps accepting through resource exhaustion. fasthttp treats every accept
// error but a timeout as permanent and stops serving, so running out of file descriptors
// (EMFILE) for a moment would take the whole gateway down. Here such errors back off and retry
// (connections keep queueing in the kernel's backlog meanwhile), logged at most once a second.
type resilientListener struct {
	net.Listener
	log     *slog.Logger
	lastLog time.Time
	// watch keeps the accepted connections' deadlines (deadline.go); nil: deadlines go straight
	// to the sockets.
	watch *deadlineWatch
	// limits admits connections (conns.go); nil: no limits.
	limits *connLimits
	// budget is the server's held_response_budget (heldbudget.go); nil: none.
	budget *heldBudget
	// lis is the server's listener the connections came through (listeners.go).
	lis *listener
}

// maxAcceptBackoff caps the wait between retries while descriptors are exhausted.
const maxAcceptBackoff = time.Second

func (l *resilientListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			var cc *clientConn
			if l.watch == nil {
				cc = &clientConn{Conn: c}
			} else {
				cc = l.watch.add(c)
			}
			cc.ex.Init(c) // plain TCP: a response's last write waits for the next read (clientConn.Write)
			if cc.peer = addrOf(c.RemoteAddr()); cc.peer.IsValid() {
				cc.peerText = cc.peer.AppendTo(nil)
			}
			cc.budget = l.budget
			cc.lis = l.lis
			if l.limits != nil {
				if status := l.limits.admit(cc); status != 0 {
					cc.evicted.Store(true) // not a candidate for eviction (it holds no slot)
					if l.watch != nil {
						l.watch.remove(cc)
					}
					l.limits.refuse(c, status)
					continue
				}
			}
			return cc, nil
		}
		if !retryableAccept(err) {
			return nil, err
		}
		if now := time.Now(); now.Sub(l.lastLog) >= time.Second {
			l.lastLog = now
			l.log.Warn("cannot accept a connection; retrying (raise the open-file limit?)", "err", err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, maxAcceptBackoff)
	}
}

// Close closes the listener; the deadline watchdog stops once the last connection is closed.
func (l *resilientListener) Close() error {
	if l.watch != nil {
		l.watch.close()
	}
	return l.Listener.Close()
}

// retryableAccept reports accept errors that pass: out of descriptors or memory, or a connection
// the peer aborted before it was accepted.
func retryableAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// clientConn reads ahead when fasthttp asks for fewer bytes than a request head. With
// ReduceMemoryUsage (which lets idle keep-alive connections hold no buffers: 10 KiB per idle
// connection instead of 21; with StreamRequestBody, only until a connection's first request)
// fasthttp waits for each next request with a one-byte read, then
// acquires its buffer and reads the rest: two read system calls per request where one would do.
// Here the small read takes whatever has arrived into a pooled buffer and hands out the rest on
// the next reads, so a request costs one read system call and an idle connection still holds
// nothing.
//
// It also sends a complete response's last write with the read that waits for the next request
// (see Write), and keeps its deadlines off the socket until they are nearly due (deadline.go).
type clientConn struct {
	net.Conn
	stash   *[]byte // pooled; nil when nothing is read ahead
	pending []byte  // the part of *stash not yet handed out

	// The peer's address, and as text, worked out once for all the connection's requests.
	peer     netip.Addr
	peerText []byte
	// lis is the listener the connection came through (Ctx.Listener).
	lis *listener
	// tlsState is the connection's client_auth policy and client certificate, worked out on
	// its first request (clientcert.go).
	tlsState atomic.Pointer[connTLS]

	// hold is set by the server once a response is complete (no body stream, not hijacked):
	// until the next read, a write may be held for it (see Write). Atomic because a TLS
	// connection closed by the server's shutdown writes its closing alert from another goroutine.
	hold atomic.Bool
	// held is a write held for the next read, in a readAheadPool buffer cut to its length.
	// Close may take it from another goroutine (fasthttp's shutdown closes idle connections).
	held atomic.Pointer[[]byte]
	ex   rawio.Exchange // the socket's write-then-read (plain TCP only)
	// waiting is when (the watchdog's clock) a read that sent a held write began its wait; 0:
	// none; poked: the watchdog has ended it (deadline.go).
	waiting atomic.Int64

	watch  *deadlineWatch // nil: deadlines go straight to the socket
	rd, wd lazyDeadline
	// The listener's connection limits (conns.go), the key c is counted under for
	// max_conns_per_ip, whether c still holds its slot, and whether it was closed to make room.
	limits   *connLimits
	limitKey netip.Addr
	counted  atomic.Bool
	evicted  atomic.Bool
	// budget is the server's held_response_budget; heldBytes what this connection's response
	// holds of it, given back once the response is written (heldbudget.go).
	budget    *heldBudget
	heldBytes atomic.Int64
	// The watchdog's last sample of the connection's progress while writing (writerate.go);
	// only the watchdog touches them.
	rateAt     int64
	rateAcked  uint64
	rateQueued int64
	mu         sync.Mutex // serializes putting deadlines on the socket
	// phase is where the connection is in its request cycle, for the server's timeouts
	// (deadline.go); phaseManual once anyone sets a deadline explicitly.
	phase atomic.Uint32
	// linger makes Close let an error answer reach a client that is still sending (linger.go).
	linger atomic.Bool
	// streaming: the current request's body or response streams, so the timeouts measure
	// idleness, up to streamEnd (the watchdog's clock; 0: no end) for the whole (stream.go).
	streaming atomic.Bool
	streamEnd atomic.Int64
	// For an HTTP/2 connection (h2idle.go): the streams its handlers are serving, and since
	// when (the watchdog's clock) it has served none; 0: busy, or not HTTP/2; -1: evicted.
	h2Streams atomic.Int32
	h2Idle    atomic.Int64
	// lineSeen: the current request's line has ended in what was read (linger.go).
	// Atomic: a TLS connection's closing alert may be written from another goroutine.
	lineSeen atomic.Bool
	// park is where the connection is in parking while idle (idlepark.go); noPark: the current
	// request's body or response streamed, so the connection does not park until the next.
	park   atomic.Uint32
	noPark atomic.Bool
	// host is the last Host value admit found canonical on this HTTP/1 connection (hostmemo.go):
	// its requests nearly always repeat it, and comparing costs less than checking again.
	host hostMemo
}

// readAheadSize is what a small read reads at most: most request heads fit; a larger one
// continues with ordinary reads. It is also the largest write held for the next read.
const readAheadSize = 4 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.hold.Load() {
		c.hold.Store(false)
	}
	if c.heldBytes.Load() != 0 {
		c.releaseHeld() // the response is written (a read follows only then)
	}
	if c.watch == nil {
		n, err := c.read(p)
		c.noteRequestLine(p[:n])
		return n, err
	}
	ph := c.phase.Load()
	if ph == phaseWriting {
		// The response is written: wait for the next request under the idle timeout.
		if c.streaming.Load() {
			c.streaming.Store(false)
		}
		c.enter(phaseIdle)
		ph = phaseIdle
	}
	n, err := c.read(p)
	if err != nil && n == 0 && c.park.Load() == parkAsked {
		// The watchdog ended the read to park the connection (idlepark.go).
		if c.parkRead(ph) {
			return 0, errParked
		}
		n, err = c.read(p)
	}
	if n > 0 && (ph == phaseIdle || ph == phaseNew) {
		c.enter(phaseReading)
	} else if n > 0 && ph == phaseReading && c.streaming.Load() {
		// A streamed body made progress: read_timeout counts from here (stream.go).
		_ = c.rd.setAt(c, false, c.streamDeadline(c.watch.read))
	}
	c.noteRequestLine(p[:n])
	return n, err
}

// Write writes p, or, when p ends a complete response (hold) and is small, keeps a copy for the
// next Read to send. After a response the server reads the connection for the next request, and
// that read nearly always finds nothing yet: a read system call that only says "not yet" before
// the runtime waits for the socket. Sent by that Read instead (package rawio), the response and
// the wait for the next request take one system call less. A response in several writes holds
// only its last (what comes before it is written at once), a streamed one (server-sent events)
// nothing: a held write waits for the next read, and a stream's next write may be far off.
// Writes are held only with the server's timeouts on: their watchdog also ends the waits that
// began too late to see a request arrive (see recv).
func (c *clientConn) Write(p []byte) (int, error) {
	if c.lineSeen.Load() {
		c.lineSeen.Store(false) // what is read next is the next request
	}
	if c.watch != nil {
		if ph := c.phase.Load(); ph == phaseReading || ph == phaseIdle {
			c.enter(phaseWriting)
		} else if ph == phaseWriting && c.streaming.Load() {
			// Each write of a streamed response gets write_timeout of its own (stream.go).
			_ = c.wd.setAt(c, true, c.streamDeadline(c.watch.write))
		}
	}
	if c.held.Load() != nil {
		if err := c.flushHeld(); err != nil {
			return 0, err
		}
	}
	if c.hold.Load() && len(p) <= readAheadSize && c.ex.Ready() && c.watch != nil {
		b := readAheadPool.Get().(*[]byte)
		*b = append((*b)[:0], p...) // within its capacity
		c.held.Store(b)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// flushHeld writes the held write, if any, the usual way.
func (c *clientConn) flushHeld() error {
	b := c.held.Swap(nil)
	if b == nil {
		return nil
	}
	_, err := c.Conn.Write(*b)
	putReadAhead(b)
	return err
}

// putReadAhead gives a read-ahead buffer back to its pool at its full length.
func putReadAhead(b *[]byte) {
	*b = (*b)[:cap(*b)]
	readAheadPool.Put(b)
}

// startRequest readies c for a request the server is about to handle. The request may have
// come pipelined behind the previous one, without a read in between: that one's held write goes
// out now rather than after this request's response.
func (c *clientConn) startRequest() {
	if c.streaming.Load() {
		c.streaming.Store(false)
	}
	if c.noPark.Load() {
		c.noPark.Store(false)
	}
	if c.hold.Load() {
		c.hold.Store(false)
	}
	if c.heldBytes.Load() != 0 {
		c.releaseHeld() // the previous response is written (pipelined requests)
	}
	if c.held.Load() != nil {
		c.enter(phaseWriting)
		_ = c.flushHeld() // an error shows in the connection's next read or write
		c.enter(phaseReading)
	}
}

// recv reads from the socket into p, first sending out (a held write), if any, in the same
// wait. p may share out's memory: the write is made before the read. spare, when not nil, is
// out's pooled buffer, which p does not share: recv gives it back once out is written and before
// any longer wait, so that a connection that stays idle does not keep it (4 KiB each).
func (c *clientConn) recv(out, p []byte, spare *[]byte) (int, error) {
	if out == nil {
		return c.Conn.Read(p)
	}
	// The wait sees only data that arrives after the write (package rawio): a request that came
	// in earlier (pipelined, or a client's end of input) would go unnoticed until the watchdog
	// ends the wait (poke, deadline.go), which it does a tick or two in.
	since := c.watch.now.Load()
	c.waiting.Store(since)
	n, rest, err := c.ex.WriteRead(out, p)
	poked := !c.waiting.CompareAndSwap(since, 0)
	if poked {
		c.unpoke()
	}
	if rest == nil && !(poked && n == 0) {
		if spare != nil {
			readAheadPool.Put(spare)
		}
		return n, err
	}
	if rest != nil {
		// Not written whole (the client is not reading fast enough): the rest goes the usual
		// way, under the write timeout, before the wait for the next request.
		c.enter(phaseWriting)
		_, err := c.Conn.Write(rest)
		if spare != nil {
			readAheadPool.Put(spare) // rest is written (or never will be)
		}
		if err != nil {
			return 0, err
		}
		c.enter(phaseIdle)
	} else if spare != nil {
		// The wait for the next request starts afresh and may last the whole idle_timeout.
		readAheadPool.Put(spare)
	}
	return c.Conn.Read(p)
}

// read is Read's read-ahead.
func (c *clientConn) read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			readAheadPool.Put(c.stash)
			c.stash = nil
		}
		return n, nil
	}
	var held *[]byte
	var out []byte
	if c.held.Load() != nil {
		if held = c.held.Swap(nil); held != nil { // nil if Close took it meanwhile
			out = *held
			*held = (*held)[:cap(*held)]
		}
	}
	if len(p) >= readAheadSize/4 {
		return c.recv(out, p, held)
	}
	// The read ahead goes into the held write's buffer once that is sent, or a fresh one.
	s := held
	if s == nil {
		s = readAheadPool.Get().(*[]byte)
	}
	n, err := c.recv(out, *s, nil)
	k := copy(p, (*s)[:n])
	if k == n {
		readAheadPool.Put(s)
		return k, err
	}
	c.stash, c.pending = s, (*s)[k:n]
	return k, nil
}
