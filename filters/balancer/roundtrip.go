package balancer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// The exchange with a target is written here rather than left to fasthttp's HostClient.Do, which
// the balancer only uses as a connection pool (its buffers too are the connection's own). Do would need its own copy of the request and a
// response to copy back from, and its streaming mode (needed so that a response larger than
// max_response_bytes is never held whole) allocates closures per response. Here the client's
// request is written from the RequestCtx as it is, and the response is read straight into the
// client's response: no copy of headers or body when the body's length is known and fits, and
// the rare chunked, unframed or oversized bodies go through fasthttp's body stream.

// upstreamConn is a pooled connection to a target, the deadline armed on it and its read buffer.
type upstreamConn struct {
	net.Conn
	armed int64 // the deadline set on Conn, Unix nanoseconds; 0: none
	// br buffers the responses read from Conn. It stays with the connection (a buffer from a
	// pool for each request cost two pool operations and a reset per request); the pool closes
	// idle connections after a few seconds, so only connections in use keep one.
	br *bufio.Reader
}

// upstreamReadBuffer is the size of a connection's read buffer, which bounds a response head.
const upstreamReadBuffer = 16 << 10

func (c *upstreamConn) reader() *bufio.Reader {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.Conn, upstreamReadBuffer)
	}
	return c.br
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
func (d *dialer) dialPooled(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := d.dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &upstreamConn{Conn: conn}, nil
}

// maxInterimResponses bounds the 1xx responses skipped before the final one.
const maxInterimResponses = 16

var errTooManyInterim = errors.New("more than 16 interim (1xx) responses")

// roundTrip sends the client's request, which prepare made ready (in place, and x.fwd), to t (starting at now,
// done by deadline) and reads the response into c.Response. A body of known length up to max_response_bytes is
// read whole and the connection goes back to the pool; any other body is returned as a stream
// that owns the connection until it is closed.
func (u *Upstream) roundTrip(c *engine.Ctx, t *target, x *exchange, now, deadline time.Time) (*upstreamBody, error) {
	timeout := deadline.Sub(now)
	if timeout <= 0 {
		return nil, fasthttp.ErrTimeout
	}
	hc := t.client
	cc, err := hc.AcquireConn(timeout, false)
	if err != nil {
		return nil, err
	}
	conn := cc.Conn().(*upstreamConn)
	if err := conn.arm(deadline, u.deadlineSlack); err != nil {
		hc.CloseConn(cc)
		return nil, err
	}
	if err := writeRequest(conn, c.Request, x); err != nil {
		hc.CloseConn(cc)
		return nil, err
	}

	br := conn.reader()
	resp := c.Response
	resp.ResetBody()
	if err := readHead(&resp.Header, br); err != nil {
		hc.CloseConn(cc)
		if err == io.EOF {
			// The upstream closed the connection without answering (often an idle one it
			// had just timed out).
			err = fasthttp.ErrConnectionClosed
		}
		return nil, err
	}
	reuse := !resp.Header.ConnectionClose()
	if c.Request.Header.IsHead() || bodiless(resp.StatusCode()) {
		if conn.reusable(reuse) {
			hc.ReleaseConn(cc)
		} else {
			hc.CloseConn(cc)
		}
		return nil, nil
	}
	if cl := resp.Header.ContentLength(); cl >= 0 && cl <= u.maxHeld {
		err := resp.ReadBody(br, u.maxHeld)
		if conn.reusable(reuse && err == nil) {
			hc.ReleaseConn(cc)
		} else {
			hc.CloseConn(cc)
		}
		return nil, err
	}

	// Chunked, delimited by the connection's end (-2), or too large to hold: fasthttp's body
	// stream decodes the framing from a response of its own.
	up := fasthttp.AcquireResponse()
	resp.Header.CopyTo(&up.Header)
	up.StreamBody = true
	if err := up.ReadBody(br, 0); err != nil {
		fasthttp.ReleaseResponse(up)
		hc.CloseConn(cc)
		return nil, err
	}
	return &upstreamBody{
		up:    up,
		r:     up.BodyStream(),
		reuse: reuse && up.Header.ContentLength() != -2,
		release: func(reuse bool) {
			if conn.reusable(reuse) {
				hc.ReleaseConn(cc)
			} else {
				hc.CloseConn(cc)
			}
		},
	}, nil
}

// writeRequest writes the request head as it is (fasthttp's Request.Write would rebuild the
// request-target from the parsed URI), then prepare's forwarding lines, then the body: in one
// write when the body is small, so that a request is one system call and one TCP segment.
func writeRequest(w io.Writer, req *fasthttp.Request, x *exchange) error {
	head := req.Header.AppendBytes(x.head[:0])
	// The head ends with the blank line: prepare's forwarding lines go before it.
	head = append(append(head[:len(head)-2], x.fwd...), "\r\n"...)
	body := req.Body()
	if len(body) <= inlineBodySize {
		head = append(head, body...)
		body = nil
	}
	x.head = head
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
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	err := b.up.CloseBodyStream()
	b.release(b.reuse && b.eof && err == nil)
	fasthttp.ReleaseResponse(b.up)
	return err
}
