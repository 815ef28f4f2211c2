// Package rawio writes a message and reads the reply on a TCP socket inside one
// syscall.RawConn.Read, so that the read waits for the reply without first trying the socket.
//
// Reading a socket right after writing a message to it nearly always finds nothing yet: one read
// system call per exchange that only says "not yet" before the runtime waits for the socket.
// RawConn.Read clears the socket's readiness before it first calls the callback: the callback
// writes and returns false, the runtime waits for the socket to become readable, and the
// callback then reads. Readiness is cleared before the write, so a reply cannot arrive unnoticed
// in between; a peer that has closed the connection answers the write with a reset, which wakes
// the wait too.
//
// The balancer sends requests to upstreams this way (the request written, the response awaited)
// and the server its responses to clients (the response written, the next request awaited).
package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Exchange is one TCP connection's write-then-read. Its zero value is not ready; Init readies
// it. It is not safe for concurrent use.
type Exchange struct {
	conn net.Conn // for the addresses in errors
	raw  syscall.RawConn
	// step is x.stepFd, bound once: a method value made per call would allocate.
	step func(fd uintptr) bool

	// The state of one WriteRead (kept here: a closure per call would allocate).
	out  []byte // what to write
	in   []byte // where the reply goes
	sent bool   // the write was made (all of out, or rest is left)
	rest []byte // what a full send buffer did not take
	done bool   // n or err is the result
	n    int
	err  error
}

// Init readies x for conn, which it reads and writes through its file descriptor. It reports
// false, leaving x not ready, when conn is not a *net.TCPConn (TLS over it is handled by the
// layer below TLS).
func (x *Exchange) Init(conn net.Conn) bool {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	x.conn, x.raw = conn, raw
	x.step = x.stepFd
	return true
}

// Ready reports whether Init readied x.
func (x *Exchange) Ready() bool { return x.raw != nil }

// WriteRead writes out, then waits until the socket is readable and reads into in, under the
// connection's read deadline. When out was not written whole, it returns what is left of it as
// rest and reads nothing: the caller writes rest the usual way (which reports any error again),
// then reads the usual way. rest is part of out.
//
// The wait sees only data that arrives after the write: readiness the runtime noted before it
// is cleared. It suits a peer that sends nothing until it has what out carries (a server
// answering a request); one that may send earlier needs a way to end the wait (see the server's
// clientConn).
func (x *Exchange) WriteRead(out, in []byte) (n int, rest []byte, err error) {
	x.out, x.in = out, in
	rerr := x.raw.Read(x.step)
	n, rest, err = x.n, x.rest, x.err
	sent, done := x.sent, x.done
	x.out, x.in, x.sent, x.rest, x.done, x.n, x.err = nil, nil, false, nil, false, 0, nil
	switch {
	case !sent:
		return 0, out, rerr // closed, or past the deadline, before the callback ran
	case rerr != nil:
		return 0, nil, rerr // closed, or the deadline passed while waiting
	case done:
		return n, nil, err
	}
	return 0, rest, nil
}

// stepFd is the RawConn.Read callback: first write, then read. It returns false to wait until
// the socket is readable.
func (x *Exchange) stepFd(fd uintptr) bool {
	if !x.sent {
		x.sent = true
		w, err := syscall.Write(int(fd), x.out)
		for err == syscall.EINTR {
			w, err = syscall.Write(int(fd), x.out)
		}
		switch {
		case err == syscall.EAGAIN:
			x.rest = x.out
			return true
		case err != nil:
			x.done, x.err = true, x.opError("write", err)
			return true
		case w < len(x.out):
			x.rest = x.out[w:]
			return true
		}
		return false // all written: wait for the reply
	}
	r, err := syscall.Read(int(fd), x.in)
	for err == syscall.EINTR {
		r, err = syscall.Read(int(fd), x.in)
	}
	switch {
	case err == syscall.EAGAIN:
		return false // woken without data: wait again
	case err != nil:
		x.err = x.opError("read", err)
	case r == 0 && len(x.in) > 0:
		x.err = io.EOF
	default:
		x.n = r
	}
	x.done = true
	return true
}

// opError wraps a system call's error as net.Conn's methods do.
func (x *Exchange) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: x.conn.LocalAddr(), Addr: x.conn.RemoteAddr(), Err: os.NewSyscallError(op, err)}
}

// Wait calls read with the socket's descriptor until it returns true, waiting for the socket to
// be readable each time it returns false (it found nothing: EAGAIN). It returns the wait's error:
// the connection closed, or its read deadline passed.
func (x *Exchange) Wait(read func(fd int) bool) error {
	return x.raw.Read(func(fd uintptr) bool { return read(int(fd)) })
}
