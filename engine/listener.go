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
			if cc.peer = addrOf(c.RemoteAddr()); cc.peer.IsValid() {
				cc.peerText = cc.peer.AppendTo(nil)
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
// connection instead of 21) fasthttp waits for each next request with a one-byte read, then
// acquires its buffer and reads the rest: two read system calls per request where one would do.
// Here the small read takes whatever has arrived into a pooled buffer and hands out the rest on
// the next reads, so a request costs one read system call and an idle connection still holds
// nothing.
//
// It also keeps its deadlines off the socket until they are nearly due (deadline.go).
type clientConn struct {
	net.Conn
	stash   *[]byte // pooled; nil when nothing is read ahead
	pending []byte  // the part of *stash not yet handed out

	// The peer's address, and as text, worked out once for all the connection's requests.
	peer     netip.Addr
	peerText []byte

	watch  *deadlineWatch // nil: deadlines go straight to the socket
	rd, wd lazyDeadline
	mu     sync.Mutex // serializes putting deadlines on the socket
	// phase is where the connection is in its request cycle, for the server's timeouts
	// (deadline.go); phaseManual once anyone sets a deadline explicitly.
	phase atomic.Uint32
}

// readAheadSize is what a small read reads at most: most request heads fit; a larger one
// continues with ordinary reads.
const readAheadSize = 4 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.watch == nil {
		return c.read(p)
	}
	ph := c.phase.Load()
	if ph == phaseWriting {
		// The response is written: wait for the next request under the idle timeout.
		c.enter(phaseIdle)
		ph = phaseIdle
	}
	n, err := c.read(p)
	if n > 0 && ph == phaseIdle {
		c.enter(phaseReading)
	}
	return n, err
}

func (c *clientConn) Write(p []byte) (int, error) {
	if c.watch != nil {
		if ph := c.phase.Load(); ph == phaseReading || ph == phaseIdle {
			c.enter(phaseWriting)
		}
	}
	return c.Conn.Write(p)
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
	if len(p) >= readAheadSize/4 {
		return c.Conn.Read(p)
	}
	s := readAheadPool.Get().(*[]byte)
	n, err := c.Conn.Read(*s)
	k := copy(p, (*s)[:n])
	if k == n {
		readAheadPool.Put(s)
		return k, err
	}
	c.stash, c.pending = s, (*s)[k:n]
	return k, nil
}
