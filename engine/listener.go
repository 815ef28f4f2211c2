package engine

import (
	"errors"
	"log/slog"
	"net"
	"sync"
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
}

// maxAcceptBackoff caps the wait between retries while descriptors are exhausted.
const maxAcceptBackoff = time.Second

func (l *resilientListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return &clientConn{Conn: c}, nil
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
type clientConn struct {
	net.Conn
	stash   *[]byte // pooled; nil when nothing is read ahead
	pending []byte  // the part of *stash not yet handed out
}

// readAheadSize is what a small read reads at most: most request heads fit; a larger one
// continues with ordinary reads.
const readAheadSize = 4 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

func (c *clientConn) Read(p []byte) (int, error) {
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
