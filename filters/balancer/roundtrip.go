package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/rawio"
	"github.com/valyala/fasthttp"
)

// The exchange with a target is written here rather than left to fasthttp's HostClient.Do. Do
// would need its own copy of the request and a response to copy back from, and its streaming mode
// (needed so that a response larger than max_response_bytes is never held whole) allocates
// closures per response. Here the client's request is written from the RequestCtx as it is, and
// the response is read straight into the client's response: no copy of headers or body when the
// body's length is known and fits, and the rare chunked, unframed or oversized bodies go through
// fasthttp's body stream. Read buffers are lent to a connection for an exchange, connections come
// from the target's pool (pool.go), and a request is written by the read that waits for its
// response.

// upstreamConn is a pooled connection to a target, the deadline armed on it and its read buffer.
type upstreamConn struct {
	net.Conn
	armed int64 // the deadline set on Conn, Unix nanoseconds; 0: none
	// br buffers the responses read from Conn, from readers while an exchange is under way; an
	// idle connection gives it back (see idle).
	br *bufio.Reader

	// ex sends a request written with Write by the Read that waits for its response (plain TCP
	// only; see Read). unsent is the writer's own buffer, not a copy (see Write).
	ex     rawio.Exchange
	unsent []byte
	// exchanges counts the requests sent on the connection: a failure on a kept-alive one may
	// be the upstream's idle close (see closedWhileIdle).
	exchanges int
	idleTick  uint32 // the pool's reaper tick when the connection went idle
}

// maxDeferredWrite is the largest write held for the next Read; a larger one goes out at once.
const maxDeferredWrite = 16 << 10

// Write holds a request for the Read that follows (plain TCP, one write of up to
// maxDeferredWrite bytes); anything else is written at once, after what is held.
//
// Unlike io.Writer's contract, Write keeps p itself until that Read or the next Write sends it.
// Its one caller, writeRequest, leaves the request head it writes alone until the response is
// read, and a copy into a buffer of the connection's own cost a cold buffer per connection: at
// 256 connections, cache misses on every request.
func (c *upstreamConn) Write(p []byte) (int, error) {
	if c.ex.Ready() && len(c.unsent) == 0 && len(p) <= maxDeferredWrite {
		c.unsent = p
		return len(p), nil
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// flush writes what Write held.
func (c *upstreamConn) flush() error {
	if len(c.unsent) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.unsent)
	c.unsent = nil
	return err
}

// Read reads the response to the request Write held, sending that first in the same wait
// (package rawio): no read system call that only says "not yet".
func (c *upstreamConn) Read(p []byte) (int, error) {
	if len(c.unsent) == 0 {
		return c.Conn.Read(p)
	}
	out := c.unsent
	c.unsent = nil
	n, rest, err := c.ex.WriteRead(out, p)
	if rest == nil {
		return n, err
	}
	// The send buffer was full: send the rest the usual way and read as usual.
	if _, err := c.Conn.Write(rest); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// send writes the request on conn and reads the response head into resp.
func (u *Upstream) send(conn *upstreamConn, req *fasthttp.Request, x *exchange, resp *fasthttp.Response, deadline time.Time) error {
	if err := conn.arm(deadline, u.deadlineSlack); err != nil {
		return err
	}
	if err := writeRequest(conn, req, x); err != nil {
		return err
	}
	resp.ResetBody()
	return readHead(&resp.Header, conn.reader())
}

// closedWhileIdle reports whether err, from a kept-alive connection's first read or write, means
// the upstream had closed the connection before this request reached it, so that sending it
// again cannot repeat it: the write itself failed (nothing was sent: any method), or the
// connection ended before a single byte of response (idempotent methods only: the request may
// have been read before the close).
func closedWhileIdle(err error, conn *upstreamConn, h *fasthttp.RequestHeader) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "write" {
		return true
	}
	nothingRead := err == io.EOF || (errors.Is(err, syscall.ECONNRESET) && (conn.br == nil || conn.br.Buffered() == 0))
	return nothingRead && isIdempotent(h)
}

// upstreamReadBuffer is the size of a connection's read buffer, which bounds a response head.
const upstreamReadBuffer = 16 << 10

// readers holds the read buffers of idle connections. Kept with each connection, 256 connections'
// buffers are 256 blocks of 16 KiB, and the first lines of each, where every response head lands,
// map to the same few cache sets: each response then starts with cache misses, in the kernel's
// copy and in the parse. Taken from the pool, the buffers in use are the most recently used ones.
var readers sync.Pool

func (c *upstreamConn) reader() *bufio.Reader {
	if c.br == nil {
		if br, ok := readers.Get().(*bufio.Reader); ok {
			br.Reset(c)
			c.br = br
		} else {
			c.br = bufio.NewReaderSize(c, upstreamReadBuffer)
		}
	}
	return c.br
}

// idle gives the read buffer back as the connection goes idle; reusable made sure it holds nothing.
func (c *upstreamConn) idle() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
}

// reusable reports whether c may go back to the target's pool after an exchange that left it
// reusable. Bytes buffered past the response mean the upstream sent more than it was asked:
// they would be read as the next request's response.
func (c *upstreamConn) reusable(reuse bool) bool {
	return reuse && c.br.Buffered() == 0
}

// arm makes sure the connection times out no earlier than deadline and at most slack later.
// Setting a deadline updates a runtime timer (two of them for the write and read sides), so a
// busy connection keeps the one it has while that is within the window: it re-arms about once
// per slack, not once per request.
func (c *upstreamConn) arm(deadline time.Time, slack time.Duration) error {
	want := deadline.UnixNano()
	if c.armed >= want && c.armed-want <= int64(slack) {
		return nil
	}
	at := want + int64(slack)
	if err := c.Conn.SetDeadline(time.Unix(0, at)); err != nil {
		return err
	}
	c.armed = at
	return nil
}

// deadlineSlackDivisor bounds how late a timeout may fire, as a fraction of it: a 30 s request
// timeout fires within 30 s + 0.94 s, a 100 ms per-try timeout within 103 ms.
const deadlineSlackDivisor = 32

// dialPooled opens a connection for the target's pool.
func (d *dialer) dialPooled(addr string, timeout time.Duration) (*upstreamConn, error) {
	conn, err := d.dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	uc := &upstreamConn{Conn: conn}
	uc.ex.Init(conn) // plain TCP: requests are sent by the read that waits for the response
	return uc, nil
}

// maxInterimResponses bounds the 1xx responses skipped before the final one.
const maxInterimResponses = 16

var errTooManyInterim = errors.New("more than 16 interim (1xx) responses")

// roundTrip sends the client's request, which prepare made ready (in place, and x.fwd), to t
// (starting at now, done by deadline) and reads the response into c.Response. A body of known
// length up to max_response_bytes is read whole and the connection goes back to the pool; any
// other body is returned as a stream that owns the connection until it is closed.
func (u *Upstream) roundTrip(c *engine.Ctx, t *target, x *exchange, now, deadline time.Time) (*upstreamBody, error) {
	timeout := deadline.Sub(now)
	if timeout <= 0 {
		return nil, fasthttp.ErrTimeout
	}
	if clientGone(c) {
		return nil, errClientGone // nothing is sent for a client that has gone
	}
	pool := t.pool
	conn, err := pool.get(timeout)
	if err != nil {
		return nil, err
	}
	resp := c.Response
	var gone func() bool // watchClient's (clientgone.go)
	for retried := false; ; retried = true {
		reused := conn.exchanges > 0
		conn.exchanges++
		gone = watchClient(c, conn)
		err := u.send(conn, c.Request, x, resp, deadline)
		if err == nil {
			break
		}
		disarm(gone)
		pool.discard(conn)
		if retried || !reused || !closedWhileIdle(err, conn, &c.Request.Header) {
			if err == io.EOF {
				err = fasthttp.ErrConnectionClosed // the upstream closed the connection without answering
			}
			return nil, err
		}
		// The upstream closed this kept-alive connection while it sat in the pool (an idle
		// timeout shorter than the pool's): the request never reached it, or was not answered
		// and may be sent again. Once more on a new connection, as nginx and Go's http.Transport
		// do, without counting it as a retry.
		if conn, err = pool.get(timeout); err != nil {
			return nil, err
		}
	}
	br := conn.br
	reuse := !resp.Header.ConnectionClose()
	if c.Request.Header.IsHead() || bodiless(resp.StatusCode()) {
		if conn.reusable(reuse && disarm(gone)) {
			pool.put(conn)
		} else {
			pool.discard(conn)
		}
		return nil, nil
	}
	// A body of known length that fits is read whole, if the server's held_response_budget has
	// room for it until the client has read it; else it streams.
	if cl := resp.Header.ContentLength(); cl >= 0 && cl <= u.maxHeld && !x.holdRefused(c, cl) {
		err := resp.ReadBody(br, u.maxHeld)
		if conn.reusable(disarm(gone) && reuse && err == nil) {
			pool.put(conn)
		} else {
			pool.discard(conn)
		}
		return nil, err
	}

	// Chunked, delimited by the connection's end (-2), too large to hold, or over the budget:
	// fasthttp's body stream decodes the framing from a response of its own.
	up := fasthttp.AcquireResponse()
	resp.Header.CopyTo(&up.Header)
	up.StreamBody = true
	if err := up.ReadBody(br, 0); err != nil {
		disarm(gone)
		fasthttp.ReleaseResponse(up)
		pool.discard(conn)
		return nil, err
	}
	return &upstreamBody{
		up:    up,
		r:     up.BodyStream(),
		reuse: reuse && up.Header.ContentLength() != -2,
		release: func(reuse bool) {
			// The watch stays armed while the body streams: a client gone meanwhile ends it.
			if conn.reusable(disarm(gone) && reuse) {
				pool.put(conn)
			} else {
				pool.discard(conn)
			}
		},
	}, nil
}

// writeRequest writes the request head as it is (fasthttp's Request.Write would rebuild the
// request-target from the parsed URI), then prepare's forwarding lines and the attempt's trace
// context lines, then the body: in one
// write when the body is small, so that a request is one system call and one TCP segment.
func writeRequest(w io.Writer, req *fasthttp.Request, x *exchange) error {
	head := req.Header.AppendBytes(x.head[:0])
	if p := req.Header.Protocol(); string(p) != "HTTP/1.1" {
		// The gateway speaks its own version to the upstream whatever the client's (HTTP/1.0;
		// the server refused other majors and made 1.x 1.1): the protocol ends the request line.
		end := bytes.IndexByte(head, '\r')
		head = slices.Replace(head, end-len(p), end, http11...)
	}
	// The head ends with the blank line: prepare's forwarding lines go before it.
	head = append(append(append(head[:len(head)-2], x.fwd...), x.trace...), "\r\n"...)
	body := req.Body()
	if len(body) <= inlineBodySize {
		head = append(head, body...)
		body = nil
	}
	x.head = head
	// An upstreamConn keeps head itself until it reads the response (see its Write).
	if _, err := w.Write(head); err != nil {
		return err
	}
	if len(body) > 0 {
		if _, err := w.Write(body); err != nil {
			return err
		}
	}
	return nil
}

// inlineBodySize is the largest request body written in the same write as the head.
const inlineBodySize = 16 << 10

// readHead reads the final response head, skipping interim 1xx responses.
func readHead(h *fasthttp.ResponseHeader, br *bufio.Reader) error {
	for n := 0; ; n++ {
		if err := h.Read(br); err != nil {
			return err
		}
		if s := h.StatusCode(); s < 100 || s > 199 || s == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		if n == maxInterimResponses {
			return errTooManyInterim
		}
	}
}

// bodiless reports whether a response with this status never has a body (RFC 9110 §6.4.1).
func bodiless(status int) bool {
	return status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
}

// upstreamBody is a response body still on the upstream connection. Closing it gives the
// connection back to the pool if the body was read to its end, and closes it otherwise.
type upstreamBody struct {
	up      *fasthttp.Response // its body stream decodes the framing
	r       io.Reader          // up's body stream, possibly behind bytes already read from it
	eof     bool
	reuse   bool
	release func(reuse bool)
	// trailersTo, for a body streamed to the client, receives the upstream's trailers at the
	// end of the body, before fasthttp writes the trailer section.
	trailersTo *fasthttp.ResponseHeader
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		if b.trailersTo != nil {
			copyTrailers(b.trailersTo, &b.up.Header)
		}
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	err := b.up.CloseBodyStream()
	b.release(b.reuse && b.eof && err == nil)
	fasthttp.ReleaseResponse(b.up)
	return err
}

var http11 = []byte("HTTP/1.1")
