package engine

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// An error answer (431 for an oversized header, 413 for an oversized body) is usually written
// while the client is still sending. Closing a socket with unread data makes the kernel send a
// reset, and a reset that reaches the client before it has read the answer discards it: the
// client sees "connection reset" instead of the status. So a connection marked to linger (as
// nginx's lingering_close does) is closed in two steps: its write side first (the client reads
// the answer, then end of input), then, after discarding what the client still sends for at most
// lingerTime and lingerBytes, the rest. At most maxLingering connections linger at once; beyond
// that they are closed at once.
const (
	lingerTime   = 2 * time.Second
	lingerBytes  = 1 << 20
	maxLingering = 1024
)

var lingering atomic.Int32

// connOf returns the server's own connection under fc (nil for another kind, such as a test's).
func connOf(fc *fasthttp.RequestCtx) *clientConn {
	conn := fc.Conn()
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	cc, _ := conn.(*clientConn)
	return cc
}

// lingerOnClose marks fc's connection to linger when it is closed.
func lingerOnClose(fc *fasthttp.RequestCtx) {
	if cc := connOf(fc); cc != nil {
		cc.linger.Store(true)
	}
}

// closeLingering closes nc's write side and leaves the rest to a goroutine that discards what
// the client still sends; it reports false (nothing done) when the connection cannot linger.
func closeLingering(nc net.Conn) bool {
	tc, ok := nc.(*net.TCPConn)
	if !ok || lingering.Add(1) > maxLingering {
		if ok {
			lingering.Add(-1)
		}
		return false
	}
	if err := tc.CloseWrite(); err != nil {
		lingering.Add(-1)
		return false
	}
	go func() {
		defer lingering.Add(-1)
		defer tc.Close()
		_ = tc.SetDeadline(time.Now().Add(lingerTime))
		b := readAheadPool.Get().(*[]byte)
		defer putReadAhead(b)
		for n := 0; n < lingerBytes; {
			k, err := tc.Read(*b)
			n += k
			if err != nil {
				return // the client's end of input, the deadline, or a reset
			}
		}
	}()
	return true
}

// noteRequestLine records whether the current request's line has ended in the bytes read (p):
// a header too large for the read buffer is answered 414 when even its request line did not fit.
// (On a TLS connection p is ciphertext; errorStatus does not ask then.)
func (c *clientConn) noteRequestLine(p []byte) {
	if !c.lineSeen.Load() && bytes.IndexByte(p, '\n') >= 0 {
		c.lineSeen.Store(true)
	}
}

// errorStatus maps a fasthttp request-reading error to the status the client gets.
func errorStatus(fc *fasthttp.RequestCtx, err error) int {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.As(err, &small):
		// Over TLS the connection sees only ciphertext and cannot tell: 431 there.
		if _, isTLS := fc.Conn().(*tls.Conn); !isTLS {
			if cc := connOf(fc); cc != nil && !cc.lineSeen.Load() {
				return fasthttp.StatusRequestURITooLong
			}
		}
		return fasthttp.StatusRequestHeaderFieldsTooLarge
	case errors.As(err, &netErr) && netErr.Timeout():
		return fasthttp.StatusRequestTimeout
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		// A Transfer-Encoding other than one "chunked": a coding the gateway does not
		// implement (RFC 9112 §6.1), as nginx answers. fasthttp reports a repeated
		// Transfer-Encoding, and one that is not chunked next to Content-Length, the same way
		// and resets the header before this runs, so those get 501 too; the connection is
		// closed either way.
		return fasthttp.StatusNotImplemented
	}
	return fasthttp.StatusBadRequest
}

// expect answers a request with Expect: 100-continue before its body is sent: 413 at once when
// the declared Content-Length is over max_body_bytes (a client waiting for 100 Continue then
// sends nothing), 100 Continue otherwise.
func (s *Server) expect(fc *fasthttp.RequestCtx) int {
	if cl := fc.Request.Header.ContentLength(); cl > int(s.cfg.MaxBodyBytes) && s.cfg.MaxBodyBytes > 0 {
		lingerOnClose(fc)
		s.refused(fc, fc.Request.Header.Method(), fasthttp.StatusRequestEntityTooLarge, reasonExpect, true) // refusals.go
		return fasthttp.StatusRequestEntityTooLarge
	}
	if cc := connOf(fc); cc != nil {
		// After 100 Continue the body is read in what looks like the idle phase: no parking
		// until the next request (idlepark.go).
		cc.noPark.Store(true)
	}
	return fasthttp.StatusContinue
}
