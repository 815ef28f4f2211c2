package engine

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine/ascii"
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
		if cc := connOf(fc); cc != nil && !cc.lineSeen.Load() {
			return fasthttp.StatusRequestURITooLong
		}
		return fasthttp.StatusRequestHeaderFieldsTooLarge
	case errors.As(err, &netErr) && netErr.Timeout():
		return fasthttp.StatusRequestTimeout
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding) && unknownCoding(fc.Request.Header.RawHeaders()):
		return fasthttp.StatusNotImplemented
	}
	return fasthttp.StatusBadRequest
}

// unknownCoding reports whether raw request headers frame the body with one Transfer-Encoding
// field whose codings end with chunked, after others the gateway does not implement ("gzip,
// chunked"), and no Content-Length: RFC 9112 §6.1's 501. Without chunked last the length of the
// body cannot be known (§6.3: 400), and with Content-Length too it is ambiguous (400).
func unknownCoding(raw []byte) bool {
	var te []byte
	fields := 0
	for line := range bytes.Lines(raw) {
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		switch {
		case ascii.EqualFoldLower(name, "content-length"):
			return false
		case ascii.EqualFoldLower(name, "transfer-encoding"):
			te = bytes.TrimSpace(line[colon+1:])
			fields++
		}
	}
	if fields != 1 {
		return false
	}
	codings, chunked := 0, 0
	last := false
	for item := range bytes.SplitSeq(te, []byte{','}) {
		item = bytes.TrimSpace(item)
		if i := bytes.IndexByte(item, ';'); i >= 0 {
			item = bytes.TrimSpace(item[:i]) // transfer-parameters
		}
		if !isToken(item) {
			return false
		}
		codings++
		last = ascii.EqualFoldLower(item, "chunked")
		if last {
			chunked++
		}
	}
	return last && chunked == 1 && codings > 1
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0) {
			return false
		}
	}
	return len(b) > 0
}

// expect answers a request with Expect: 100-continue before its body is sent: 413 at once when
// the declared Content-Length is over max_body_bytes (a client waiting for 100 Continue then
// sends nothing), 100 Continue otherwise.
func (s *Server) expect(fc *fasthttp.RequestCtx) int {
	if cl := fc.Request.Header.ContentLength(); cl > int(s.cfg.MaxBodyBytes) && s.cfg.MaxBodyBytes > 0 {
		lingerOnClose(fc)
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}
