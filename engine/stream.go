package engine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Request bodies are either buffered or streamed.
//
// The HTTP/1.1 server runs fasthttp with StreamRequestBody: fasthttp reads a request's head and at
// most 8 KiB of a body of known length (prefetchedBody), then calls the handler. A body that
// arrived whole with its head (Content-Length up to 8 KiB, every GET) is made a plain buffered body
// again (admitBody), so c.Request.Body() works as it always has and nothing allocates. Any other
// body (larger, or chunked) stays a stream: c.Request.IsBodyStream() is true and its reader is the
// Ctx's bodyStream, which enforces max_body_bytes on what actually arrives, reports a body that
// ends short of its Content-Length, and stops at stream_timeout. The balancer copies it to the
// upstream as it arrives; a filter that needs the bytes calls BufferBody first.
//
// fasthttp no longer answers 413 itself in this mode, so admitBody does, before the pipeline, for
// a declared Content-Length over max_body_bytes; a chunked body is cut where it passes the limit,
// with an error (never a silent end), and the connection is closed after the answer.

// prefetchedBody is what fasthttp's StreamRequestBody reads of a known-length body with the
// request head (readBodyWithStreaming): a body up to this long is complete when the handler runs.
const prefetchedBody = 8 << 10

var (
	// ErrBodyTooLarge is the error of a request body over its limit (max_body_bytes, or the
	// bound a filter passed to BufferBody). BodyErrorStatus maps it to 413.
	ErrBodyTooLarge = errors.New("request body larger than max_body_bytes")
	// ErrStreamTimeout is the error of a streamed body still going at the server's
	// stream_timeout.
	ErrStreamTimeout = errors.New("stream_timeout reached")
	// errBodyShort is a streamed body that ended before its Content-Length.
	errBodyShort = fmt.Errorf("request body shorter than its Content-Length: %w", io.ErrUnexpectedEOF)
	// errTooManyTrailers is a trailer section with more fields than dropTrailers takes.
	errTooManyTrailers = errors.New("too many request trailer fields")
)

// bodyStream is a streamed request body as the pipeline reads it: the client's stream (fasthttp's
// request stream, or an HTTP/2 request body), limited and checked.
type bodyStream struct {
	r   io.Reader
	cl  int64     // the declared length; -1: unknown (chunked)
	max int64     // the most that may arrive
	n   int64     // read so far
	end time.Time // stream_timeout; zero: none
	err error     // sticky: io.EOF once the body ended, or why it failed
	// trailers is the request header of a chunked HTTP/1.1 body, whose trailer section
	// fasthttp reads into it at the body's end: dropped there (dropTrailers, with scratch),
	// as the server drops a buffered body's when the request arrives.
	trailers *fasthttp.RequestHeader
	scratch  *[]byte
	// pre is what was read of the body before it was found to stream (admitBody), served
	// first; those bytes were counted in n already.
	pre []byte
}

func (b *bodyStream) Read(p []byte) (int, error) {
	if len(b.pre) > 0 {
		n := copy(p, b.pre)
		b.pre = b.pre[n:]
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	if !b.end.IsZero() && time.Now().After(b.end) {
		b.err = ErrStreamTimeout
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		// Only what is within the limit is handed on, with the error: the reader must not
		// take what it got for the whole body.
		n -= int(b.n - b.max)
		b.n = b.max
		b.err = ErrBodyTooLarge
		return n, b.err
	}
	if err == io.EOF && b.cl >= 0 && b.n < b.cl {
		// fasthttp's request stream reports a client that went away mid-body as the end.
		err = errBodyShort
	}
	if err == io.EOF && b.trailers != nil {
		var ok bool
		if *b.scratch, ok = dropTrailers(b.trailers, *b.scratch); !ok {
			err = errTooManyTrailers
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// StreamRequestBody makes r the request's body, streamed: contentLength is the declared length
// (-1: unknown), limit the most that may arrive (more fails with ErrBodyTooLarge), end the
// stream_timeout (zero: none). The HTTP/1.1 server calls it for bodies it does not buffer; an
// HTTP/2 handler calls it with the stream's body.
func (c *Ctx) StreamRequestBody(r io.Reader, contentLength int, limit int64, end time.Time) {
	c.body = bodyStream{r: r, cl: int64(contentLength), max: limit, end: end}
	c.bodyLimit = limit
	c.Request.SetBodyStream(&c.body, contentLength)
}

// BufferBody reads a streamed request body into the request, so that c.Request.Body() returns
// it, reading at most max bytes (max <= 0: the server's max_body_bytes). A body that is already
// buffered is left as it is. A body over max returns ErrBodyTooLarge and can no longer be
// forwarded: answer the request (c.Fail(BodyErrorStatus(err), err)). Any other error is the
// client's (a timeout, a broken chunk); BodyErrorStatus maps it as well.
func (c *Ctx) BufferBody(max int) error {
	req := c.Request
	if !req.IsBodyStream() {
		return nil
	}
	if max <= 0 {
		max = int(c.bodyLimit)
	}
	cl := req.Header.ContentLength()
	if max > 0 && cl > max {
		c.body.err = ErrBodyTooLarge
		return ErrBodyTooLarge
	}
	size := cl
	if size < 0 {
		size = 32 << 10
	}
	b := make([]byte, 0, size)
	r := req.BodyStream()
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if max > 0 && len(b) > max {
			c.body.err = ErrBodyTooLarge // the rest is unread: the connection closes (endBody)
			return ErrBodyTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	// The trailer section of a chunked body is gone with it: the body goes on with a length.
	req.SetBodyRaw(b)
	req.Header.SetContentLength(len(b))
	return nil
}

// BodyErrorStatus is the status for a request whose body could not be read: 413 over the limit,
// 408 for a timeout (read_timeout between reads, or stream_timeout), 400 otherwise (a broken
// chunk, a body shorter than its Content-Length).
func BodyErrorStatus(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, ErrStreamTimeout), errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusRequestTimeout
	}
	return fasthttp.StatusBadRequest
}

// admitBody settles the request's body before routing: a declared body over max_body_bytes is
// answered 413 (returned); one that fasthttp read whole with the head becomes a plain buffered
// body; any other is streamed through c.body.
func (s *Server) admitBody(c *Ctx, cc *clientConn, h1 bool) int {
	req := c.Request
	if !h1 || !req.IsBodyStream() {
		return 0
	}
	cl := req.Header.ContentLength()
	max := int64(s.cfg.MaxBodyBytes)
	if int64(cl) > max {
		return fasthttp.StatusRequestEntityTooLarge
	}
	if cl >= 0 && cl <= prefetchedBody {
		// Read whole with the head: take the stream off and the bytes stay as the body
		// (fasthttp's server still owns the stream and releases it after the response).
		_ = req.CloseBodyStream()
		return 0
	}
	if cc != nil {
		cc.streamFor(s.cfg.StreamTimeout.D())
	}
	s.streamBody(c, req.BodyStream(), cl)
	if cl >= 0 {
		return 0
	}
	c.body.trailers, c.body.scratch = &req.Header, &c.hdrScratch
	// A chunked body is collected up to prefetchedBody bytes first: one that ends within them
	// (most do) becomes a buffered body with a Content-Length, as before streaming; a longer
	// one streams, those bytes first.
	b := c.chunkBuf[:0]
	for len(b) <= prefetchedBody {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := c.body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			c.chunkBuf = b
			req.SetBodyRaw(b) // takes the stream off; the server still drains and releases it
			req.Header.SetContentLength(len(b))
			return 0
		}
		if err != nil {
			c.chunkBuf = b[:0]
			return BodyErrorStatus(err)
		}
	}
	c.chunkBuf = b
	c.body.pre = b
	return 0
}

// streamBody makes r the request's streamed body under the server's limits: max_body_bytes and
// stream_timeout from the request's start (c.Start). contentLength is the declared length (-1:
// none); a declared length over max_body_bytes is the caller's to refuse first (413). The
// HTTP/1.1 path calls it from admitBody; an HTTP/2 handler calls it with the stream's body.
func (s *Server) streamBody(c *Ctx, r io.Reader, contentLength int) {
	var end time.Time
	if st := s.cfg.StreamTimeout.D(); st > 0 {
		end = c.Start.Add(st)
	}
	c.StreamRequestBody(r, contentLength, int64(s.cfg.MaxBodyBytes), end)
}

// endBody closes the client's connection after a streamed body that was not read to its end:
// it failed (over the limit, a timeout, a broken chunk), or a filter or the upstream answered
// before it was all read. What the client still sends can no longer be told from a next request,
// so the answer goes out lingering (linger.go), as fasthttp's own 413 did.
func endBody(c *Ctx) {
	if c.body.r == nil || c.body.err == io.EOF {
		return
	}
	c.Fast.SetConnectionClose()
	lingerOnClose(c.Fast)
}

// streamFor makes the connection's timeouts measure idleness while a body streams (its request
// body now, or the response it is about to write): read_timeout between reads that bring data,
// write_timeout for each write, and at most d (stream_timeout; 0: none) from now for the
// whole. The connection's next request starts the usual cycle again (clientConn.Read).
func (c *clientConn) streamFor(d time.Duration) {
	w := c.watch
	if w == nil {
		return
	}
	if !c.streaming.Load() {
		c.streamEnd.Store(w.after(int64(d)))
		c.streaming.Store(true)
		// Until the next request, an idle-looking read may be in the middle of a body.
		c.noPark.Store(true)
	}
}

// streamDeadline is d from now, no later than the stream's end.
func (c *clientConn) streamDeadline(d int64) int64 {
	t := c.watch.after(d)
	if end := c.streamEnd.Load(); end != 0 && (t == 0 || t > end) {
		t = end
	}
	return t
}
