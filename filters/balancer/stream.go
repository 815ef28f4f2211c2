package balancer

import (
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// Streamed bodies, both ways.
//
// A request body the server did not buffer (engine: c.Request.IsBodyStream(); larger than what
// arrives with the head, or chunked, over HTTP/1.1 or HTTP/2) is copied to the upstream as it
// arrives, one read at a time through a 64 KiB buffer: with its Content-Length when the client
// declared one, chunked otherwise. A blocked write to the upstream blocks the next read from the
// client, so a slow upstream slows the client down (back-pressure) and nothing piles up in the
// gateway. The upstream connection's deadline moves with every write: the upstream's timeout
// measures the time between progress, and the server's stream_timeout bounds the whole (the
// client's side is the engine's).
//
// Retries and replays send a request again. A streamed body cannot be read twice, so it is sent
// again only while everything read of it is still in the buffer: before the first read (a failed
// connect) or after exactly one (the whole body of a small chunked request, or the first part of
// a large one on a pooled connection the upstream had closed). Once a second read has gone out,
// a failure is final: 502, no retry, whatever the retry block says.
//
// A client body that fails (over max_body_bytes, a timeout, a broken chunk, a client gone) aborts
// the exchange: the upstream connection is closed mid-body, so the upstream never takes a cut
// body for a whole one, and the client gets 413, 408 or 400 (engine.BodyErrorStatus) on a
// connection that then closes. An upstream that answers before it has read the whole body (a
// 413 or 401 of its own) and stops reading gets its answer relayed.

// streamChunk is what one read of a streamed request body takes at most.
const streamChunk = 64 << 10

// chunkRoom is the room kept before the data for a chunk's size line ("10000\r\n").
const chunkRoom = 8

var streamBufs = sync.Pool{New: func() any {
	b := make([]byte, chunkRoom+streamChunk+2)
	return &b
}}

// clientBodyError is a failure to read the client's streamed body, as opposed to one of the
// upstream's.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string {
	return "reading the client's request body: " + e.err.Error()
}
func (e *clientBodyError) Unwrap() error { return e.err }

// replayable reports whether the request can be sent again: its body is buffered, or everything
// read of the stream so far is still in the buffer (and none of it went to an HTTP/2 target,
// whose transport reads the stream itself: h2transport.go).
func (x *exchange) replayable() bool {
	return !x.streamed || (!x.unreplayable && x.bodyReads <= 1)
}

// releaseStream gives the copy buffer back.
func (x *exchange) releaseStream() {
	if x.sbuf != nil {
		streamBufs.Put(x.sbuf)
		x.sbuf = nil
	}
	x.streamed, x.bodyReads, x.bodyEOF, x.first, x.firstData = false, 0, false, nil, nil
}

// sendStreamed writes the request head, then the client's body as it arrives, then reads the
// response head. idle is the attempt's timeout, counted again from each write.
func (u *Upstream) sendStreamed(conn *upstreamConn, req *fasthttp.Request, x *exchange, resp *fasthttp.Response, idle time.Duration) error {
	if x.sbuf == nil {
		x.sbuf = streamBufs.Get().(*[]byte)
	}
	body := req.BodyStream()
	if x.bodyReads == 0 && !x.bodyEOF {
		// The first part of the body is read before the head goes out: a chunked body that
		// ends within it goes on with a Content-Length, as a buffered one would, and one whose
		// framing is broken never reaches the upstream.
		for x.bodyReads == 0 && !x.bodyEOF {
			data, err := x.readData(body)
			if err != nil {
				return err
			}
			if len(data) > 0 || x.bodyEOF {
				if x.bodyEOF && req.Header.ContentLength() < 0 {
					req.Header.SetContentLength(len(data))
				}
				x.first = x.frame(data, req.Header.ContentLength() < 0)
				x.firstData = data
			}
		}
	}
	chunked := req.Header.ContentLength() < 0
	x.head = appendHead(x.head[:0], req, x)
	if _, err := conn.Write(x.head); err != nil {
		return err
	}
	// Out now: the rest of the body may be long in coming.
	if err := conn.flush(); err != nil {
		return err
	}
	// The first part (again, on a replay: it is still in the buffer).
	if err := u.writeBody(conn, x.first, idle); err != nil {
		return u.earlyAnswer(conn, resp, idle, err)
	}
	for !x.bodyEOF {
		data, err := x.readData(body)
		if err != nil {
			return err
		}
		if err := u.writeBody(conn, x.frame(data, chunked), idle); err != nil {
			return u.earlyAnswer(conn, resp, idle, err)
		}
	}
	if err := conn.arm(time.Now().Add(idle), u.deadlineSlack); err != nil {
		return err
	}
	if chunked {
		// Sent by the read of the response head (upstreamConn.Write): it is never overwritten.
		if _, err := conn.Write(lastChunk); err != nil {
			return u.earlyAnswer(conn, resp, idle, err)
		}
	}
	resp.ResetBody()
	return readHead(&resp.Header, conn.reader())
}

var lastChunk = []byte("0\r\n\r\n")

// writeBody writes part of a streamed body under a deadline idle from now.
func (u *Upstream) writeBody(conn *upstreamConn, p []byte, idle time.Duration) error {
	if len(p) == 0 {
		return nil
	}
	if err := conn.arm(time.Now().Add(idle), u.deadlineSlack); err != nil {
		return err
	}
	if _, err := conn.Write(p); err != nil {
		return err
	}
	// Write may have kept p to send with the next read (upstreamConn.Write), and p is the
	// buffer the next part of the body is read into.
	return conn.flush()
}

// earlyAnswer reads the response of an upstream that stopped taking the body (werr, from a
// write): an upstream may answer before it has read the whole body, then close. The connection
// is not reused. Without an answer, werr stands.
func (u *Upstream) earlyAnswer(conn *upstreamConn, resp *fasthttp.Response, idle time.Duration, werr error) error {
	var ce *clientBodyError
	if errors.As(werr, &ce) {
		return werr
	}
	if conn.arm(time.Now().Add(min(idle, time.Second)), u.deadlineSlack) != nil {
		return werr
	}
	resp.ResetBody()
	if readHead(&resp.Header, conn.reader()) != nil {
		return werr
	}
	resp.Header.SetConnectionClose()
	return nil
}

// readData reads the next part of the client's body into x.sbuf (nothing, at times).
func (x *exchange) readData(body io.Reader) ([]byte, error) {
	b := *x.sbuf
	n, err := body.Read(b[chunkRoom : chunkRoom+streamChunk])
	if err == io.EOF {
		x.bodyEOF, err = true, nil
	}
	if err != nil {
		// The pipeline's reader (engine) stops for good after an error: nothing of what the
		// client sent after it can reach the upstream.
		return nil, &clientBodyError{err}
	}
	if n > 0 {
		// After the second, what was read first is overwritten: no replay (replayable).
		x.bodyReads++
	}
	return b[chunkRoom : chunkRoom+n], nil
}

// frame frames data, which readData left in x.sbuf, for the upstream: as it is, or as a chunk
// (its size line written in the room before it, its CRLF after it).
func (x *exchange) frame(data []byte, chunked bool) []byte {
	if !chunked || len(data) == 0 {
		return data
	}
	b := *x.sbuf
	var size [chunkRoom]byte
	line := append(strconv.AppendUint(size[:0], uint64(len(data)), 16), '\r', '\n')
	start := chunkRoom - len(line)
	copy(b[start:], line)
	b[chunkRoom+len(data)], b[chunkRoom+len(data)+1] = '\r', '\n'
	return b[start : chunkRoom+len(data)+2]
}

// liveResponse reports whether a response of unknown length goes to the client as it arrives
// rather than being held up to max_response_bytes: server-sent events, a response whose
// upstream says X-Accel-Buffering: no (nginx's convention, removed here as nginx does), or any
// when the upstream block has stream_responses = true.
func liveResponse(h *fasthttp.ResponseHeader, all bool) bool {
	live := all || isEventStream(h.ContentType())
	if v := h.PeekBytes(hdrAccelBuffering); v != nil {
		live = live || ascii.EqualFoldLower(v, "no")
		h.DelBytes(hdrAccelBuffering)
	}
	return live
}

var hdrAccelBuffering = []byte("X-Accel-Buffering")

// isEventStream reports whether a Content-Type is text/event-stream (parameters aside).
func isEventStream(ct []byte) bool {
	const es = "text/event-stream"
	if len(ct) < len(es) || !ascii.EqualFoldLower(ct[:len(es)], es) {
		return false
	}
	return len(ct) == len(es) || ct[len(es)] == ';' || ct[len(es)] == ' '
}

// armIdle moves the connection's deadline to the idle timeout from now (no later than the
// stream's end) before a read of a response body that streams to the client.
func (b *upstreamBody) armIdle() error {
	if !b.streaming || b.conn == nil || b.idle <= 0 {
		return nil
	}
	t := time.Now().Add(b.idle)
	if !b.end.IsZero() && t.After(b.end) {
		t = b.end
	}
	return b.conn.arm(t, b.slack)
}
