package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// HTTP/2 is served by net/http's own server (Protocols HTTP2 and UnencryptedHTTP2 only), fed by
// the accept loop (accept.go). Its handler turns each stream into the same Ctx an HTTP/1.x
// request gets: a pooled fasthttp.RequestCtx whose Request is built from the stream's
// pseudo-headers and fields, then the same admission (admit), cleaning and pipeline (run) as
// Server.handle, then the Ctx's response written back as HEADERS, DATA and trailers.

// ProtoHTTP2 is Ctx.Proto for a request that came over HTTP/2.
const ProtoHTTP2 = "HTTP/2.0"

// connCtxKey keys the stream context's value holding the connection the HTTP/2 server serves.
type connCtxKey struct{}

// h2BufferLimit is the largest request body of declared length the handler reads whole before
// the pipeline runs; a larger one, or one of unknown length, is a body stream.
const h2BufferLimit = 1 << 20

// h2CopyBuffer is the size of a stream's buffer for copying bodies.
const h2CopyBuffer = 32 << 10

// newH2Server makes the HTTP/2 server with the server block's limits.
func (s *Server) newH2Server() *http.Server {
	cfg := &s.cfg
	var protos http.Protocols
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	streams := cfg.H2MaxConcurrentStreams
	if streams <= 0 {
		streams = defaultH2MaxConcurrentStreams
	}
	idle := cfg.IdleTimeout.D()
	if idle <= 0 {
		idle = cfg.ReadTimeout.D() // as for HTTP/1.x
	}
	return &http.Server{
		Handler:   http.HandlerFunc(s.serveHTTP2),
		Protocols: &protos,
		// Its default is 1 MiB; HTTP/1.x gets max_header_bytes, and so does HTTP/2 (the
		// header list as HPACK decodes it, which also bounds what a compressed header block
		// may expand to).
		MaxHeaderBytes: int(cfg.MaxHeaderBytes),
		// A connection without open streams is closed (GOAWAY) after idle_timeout. Read and
		// write timeouts are per stream, kept by the handler (readTimeouts, writeResponse).
		IdleTimeout: idle,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: streams,
			// A client that stops reading: the connection fails once a write makes no progress
			// for write_timeout.
			WriteByteTimeout: cfg.WriteTimeout.D(),
			// The protocol's default frame size (Go's own default is 1 MiB): a frame past it is
			// a FRAME_SIZE_ERROR, as clients that never read SETTINGS expect (h2spec 4.2).
			MaxReadFrameSize: 16 << 10,
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connCtxKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(s.log.With("component", "http2").Handler(), slog.LevelDebug),
	}
}

// h2stream is the pooled per-stream state of the HTTP/2 handler.
type h2stream struct {
	fc fasthttp.RequestCtx
	// body is the request's body, nil without one. It is the stream's own, not pooled with
	// the rest: an HTTP/2 upstream exchange may still be inside its Read after the handler
	// returned (full duplex, or a target that answered before the body ended).
	body *h2Body
	// held is what the response holds of the server's held_response_budget (budget; nil:
	// unlimited), given back once it is written (Ctx.HoldResponse).
	held   int64
	budget *heldBudget
	copy   []byte // the response body stream's copy buffer
	// timeouts are the stream's listener's read and write timeouts (listeners.go).
	timeouts *ServerConfig
	// What the stream's server decoded besides the header fields (h2Source.fillHeader): the
	// request body (nil without one), its declared length (-1: none), and a HEAD request.
	reqBody  io.Reader
	declared int64
	head     bool
	// id is the stream's id on the engine's own server (0 on net/http's), for the log line of a
	// cut response (cutlog.go).
	id uint32
}

var h2streamPool = sync.Pool{New: func() any { return new(h2stream) }}

// h2Control is what the handler needs of a stream besides its http.ResponseWriter: the read and
// write deadlines, and a flush that reports failure. The engine's own server's stream is one
// itself (h2cstream); net/http's streams are reached through an http.ResponseController.
type h2Control interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	FlushError() error
}

// rcControl is net/http's stream as an h2Control.
type rcControl struct{ rc *http.ResponseController }

func (c rcControl) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c rcControl) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }
func (c rcControl) FlushError() error                  { return c.rc.Flush() }

// h2Source is a stream's request as its server decoded it: net/http's http.Request
// (netRequest), or the engine's own server's stream with the fields its HPACK decoder emitted
// (h2cstream), which build the fasthttp request without an http.Request in between.
type h2Source interface {
	// fillHeader sets st's request method, target, Host and fields, and st's reqBody,
	// declared and head, or returns the status to refuse the request with.
	fillHeader(st *h2stream) int
}

// serveHTTP2 serves one HTTP/2 stream of net/http's server.
func (s *Server) serveHTTP2(w http.ResponseWriter, r *http.Request) {
	nc, _ := r.Context().Value(connCtxKey{}).(net.Conn)
	s.serveStream(w, netRequest{r}, r.Context(), nc, rcControl{http.NewResponseController(w)})
}

// serveStream serves one HTTP/2 stream of either server: req is its request, ctx the stream's
// context (r's for net/http's server; the engine's own server's stream is one itself), nc the
// connection.
func (s *Server) serveStream(w http.ResponseWriter, req h2Source, ctx context.Context, nc net.Conn, rc h2Control) {
	start := time.Now()
	st := h2streamPool.Get().(*h2stream)
	if cc := clientConnOf(nc); cc != nil {
		cc.h2Begin()
		defer cc.h2End()
	}
	fc := &st.fc
	fc.Init2(nc, quietLogger{}, true)
	st.budget = s.budget
	st.timeouts = s.connSettings(nc)
	own, _ := w.(*h2cstream)
	st.id = 0
	if own != nil {
		st.id = own.id
	}
	status := req.fillHeader(st)
	// c is the request's Ctx while its response is written, nil without one.
	var c *Ctx
	if status == 0 {
		status = s.h2Body(st, ctx, rc)
	}
	if status != 0 {
		s.refused(fc, fc.Request.Header.Method(), status, reasonH2Request, true) // refusals.go
		WriteError(&fc.Response, status)
	} else if ctx.Err() != nil {
		// Reset before its handler ran (a queued stream under a rapid reset): nothing to do.
	} else if !s.admit(fc, nil) { // streams run concurrently: no per-connection Host memo
		countUnrouted(fc.Request.Header.Method(), fc.Response.StatusCode()) // refusals.go
	} else {
		c = AcquireCtx(fc)
		c.Start = start
		c.Proto = ProtoHTTP2
		c.Context = ctx
		c.ClientContext = ctx
		c.h2 = st
		if b := st.body; b != nil && b.cancel != nil {
			c.ClientContext = b.ctx
			// The pipeline reads the stream through the Ctx's bodyStream: stream_timeout from
			// c.Start, BufferBody for filters that need the bytes, BodyErrorStatus for its
			// errors (stream.go).
			s.streamBody(c, b, int(st.declared))
		}
		if !s.run(c, false) {
			c = nil // released, or the streamed response's end releases it
		}
	}
	if st.body != nil && st.body.exceeded.Load() {
		// The client sent more than max_body_bytes without declaring it: whatever the
		// pipeline made of the truncated body, the answer is 413.
		WriteError(&fc.Response, fasthttp.StatusRequestEntityTooLarge)
	}
	// A stream refused before its pipeline ran still answers a gRPC client with a status.
	grpcAnswerTo(&fc.Request, &fc.Response)
	abort := s.writeResponse(w, rc, st.head, ctx, st, c)
	if own != nil {
		own.settle(abort) // before the Ctx's response is reset below (h2conn.go)
	}
	if c != nil {
		releaseServed(c)
	}
	if b := st.body; b != nil {
		// Only now: an HTTP/2 upstream exchange may read the request body while the
		// response streams (full duplex), under this context (balancer: ClientContext);
		// ended earlier, every upstream stream whose request body was still going (every
		// gRPC call) was reset.
		b.end()
		st.body = nil
	}
	_ = fc.Response.CloseBodyStream()
	_ = fc.Request.CloseBodyStream()
	if st.held != 0 {
		st.budget.give(st.held)
		st.held = 0
	}
	st.reqBody = nil
	fc.Request.Reset()
	fc.Response.Reset()
	fc.ResetUserValues()
	fc.Hijack(nil)
	h2streamPool.Put(st)
	if abort {
		// The upstream failed mid-body, or the client took nothing for write_timeout (both
		// logged): the stream ends in an error (RST_STREAM), not a clean end the client would
		// take for the whole body.
		panic(http.ErrAbortHandler)
	}
}

// netRequest is a stream of net/http's server as an h2Source.
type netRequest struct{ r *http.Request }

// fillHeader fills st's request from r. net/http has checked the stream's framing already:
// pseudo-headers present, valid and first, lower-case field names, no connection-specific
// fields, TE only "trailers", a Content-Length the DATA frames must match (RFC 9113 §8.2, §8.3).
// What is left are the rules admit applies to HTTP/1.x.
func (n netRequest) fillHeader(st *h2stream) int {
	r := n.r
	st.declared = r.ContentLength
	if status := st.setStart(r.Method, r.RequestURI, r.Host); status != 0 {
		return status
	}
	h := &st.fc.Request.Header
	auth := 0
	for k, vs := range r.Header {
		if k == "Host" {
			// :authority wins, and a Host naming something else makes the request malformed
			// (RFC 9113 §8.3.1): two hosts, one routed on and one acted on.
			if len(vs) != 1 || !strings.EqualFold(vs[0], r.Host) {
				return fasthttp.StatusBadRequest
			}
			continue
		}
		if len(k) == len("authorization") && ascii.EqualFoldLower([]byte(k), "authorization") {
			// Not a list: with two, one would be verified and the other acted on.
			if auth += len(vs); auth > 1 {
				return fasthttp.StatusBadRequest
			}
		}
		if connectionSpecific(k) {
			return fasthttp.StatusBadRequest // net/http refuses them; this keeps it so
		}
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		st.reqBody = r.Body
	}
	return 0
}

// setStart sets st's request method, target and Host from a stream's pseudo-header fields, for
// both servers' fillHeader; a :path the gateway does not serve is 400.
func (st *h2stream) setStart(method, target, authority string) int {
	h := &st.fc.Request.Header
	h.SetMethod(method)
	st.head = method == http.MethodHead
	// The request goes upstream as HTTP/1.1 (until the upstream speaks HTTP/2 itself).
	h.SetProtocolBytes(http11)
	if !h2Target(target, method) {
		return fasthttp.StatusBadRequest
	}
	h.SetRequestURI(target)
	h.SetHost(authority)
	return 0
}

// h2Target reports a :path the gateway serves: origin-form, or "*" for OPTIONS (RFC 9113 §8.3.1).
func h2Target(target, method string) bool {
	return target != "" && (target[0] == '/' || target == "*" && method == http.MethodOptions)
}

// h2Body reads or opens st's request body (fillHeader found it), or returns the status to
// refuse the request with.
func (s *Server) h2Body(st *h2stream, ctx context.Context, rc h2Control) int {
	if st.reqBody == nil {
		return 0 // HEADERS ended the stream, or content-length: 0
	}
	req := &st.fc.Request
	max := int64(s.cfg.MaxBodyBytes)
	if st.declared > max {
		return fasthttp.StatusRequestEntityTooLarge
	}
	read := st.timeouts.ReadTimeout.D()
	if read > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(read))
	}
	st.body = &h2Body{r: st.reqBody, left: max, rc: rc, timeout: read}
	if st.declared >= 0 && st.declared <= h2BufferLimit {
		// Small and declared: read whole now, under read_timeout, for filters to read as
		// they read an HTTP/1.x body.
		if st.copy == nil {
			st.copy = make([]byte, h2CopyBuffer)
		}
		if _, err := io.CopyBuffer(req.BodyWriter(), st.body, st.copy); err != nil {
			if st.body.exceeded.Load() {
				return fasthttp.StatusRequestEntityTooLarge
			}
			return fasthttp.StatusBadRequest
		}
		req.Header.SetContentLength(int(st.declared))
		return 0
	}
	// Large or of unknown length: the pipeline gets a stream, read as it arrives, with
	// read_timeout between reads (h2Body). A body that fails (too large, the client gone, a
	// timeout) abandons the request: its ClientContext ends, so nothing more goes upstream
	// (fasthttp's Request.Body would otherwise hand a reader of the whole body the error's
	// text as the body).
	st.body.ctx, st.body.cancel = context.WithCancelCause(ctx)
	return 0
}

// connectionSpecific reports the header fields HTTP/2 forbids (RFC 9113 §8.2.2).
func connectionSpecific(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// h2Body is a stream's request body, cut at max_body_bytes. While it is being read, each read
// moves the stream's read deadline on (read_timeout between reads, not for the whole body).
//
// A streamed body's reader (an HTTP/2 upstream exchange's goroutine) may outlive the handler:
// exceeded is read by the handler while it may be written, and the stream's control (net/http's
// ResponseController, which must not be called once the handler returned) is used only until end.
type h2Body struct {
	r        io.Reader
	left     int64 // bytes the client may still send
	exceeded atomic.Bool
	// ctx is the request's ClientContext while the body streams, ended by cancel when the
	// body fails (its cause is the failure, see BodyFailure) or the handler returns; nil for a
	// body read whole.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timeout time.Duration
	moved   time.Time // when the read deadline was last moved

	mu sync.Mutex // guards rc
	rc h2Control
}

func (b *h2Body) Read(p []byte) (int, error) {
	if b.r == nil {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		b.exceeded.Store(true)
		b.fail(ErrBodyTooLarge)
		return int(b.left), ErrBodyTooLarge
	}
	if err != nil && err != io.EOF {
		b.fail(err)
	}
	b.left -= int64(n)
	if n > 0 && b.timeout > 0 {
		// Moving the deadline is a message to the connection's goroutine: at most a few
		// times per timeout.
		if now := time.Now(); now.Sub(b.moved) > b.timeout/4 {
			b.moved = now
			b.mu.Lock()
			if b.rc != nil {
				_ = b.rc.SetReadDeadline(now.Add(b.timeout))
			}
			b.mu.Unlock()
		}
	}
	return n, err
}

// fail abandons a streamed body's request (see h2Body), err saying why.
func (b *h2Body) fail(err error) {
	if b.cancel != nil {
		b.cancel(&bodyFailure{err})
	}
}

// bodyFailure is the cause of a ClientContext that a failed request body ended.
type bodyFailure struct{ err error }

func (e *bodyFailure) Error() string { return "request body: " + e.err.Error() }
func (e *bodyFailure) Unwrap() error { return e.err }

// BodyFailure returns why ctx, a request's ClientContext, ended when the request's streamed body
// failed (over max_body_bytes, a read timeout, a broken stream), or nil when it ended for another
// reason or has not. The body's reader cancels the context before it returns the error to
// whoever reads it, so an upstream exchange that sees the context end first asks here whether
// the client's body, not the client's departure, ended it (413, 408 or 400 instead of 502).
func BodyFailure(ctx context.Context) error {
	var bf *bodyFailure
	if ctx == nil || !errors.As(context.Cause(ctx), &bf) {
		return nil
	}
	return bf.err
}

// end is the handler's return: the body's context ends and a read still under way no longer
// touches the stream's control.
func (b *h2Body) end() {
	if b.cancel != nil {
		b.cancel(nil)
	}
	b.mu.Lock()
	b.rc = nil
	b.mu.Unlock()
}

// writeResponse writes the Ctx's response to the stream: status, header fields less the ones
// HTTP/2 forbids, the body (a body stream copied as it comes, flushed after each read), then
// trailers. write_timeout bounds each write's progress. It reports whether the stream must be
// reset: a streamed body failed before its end, or a write passed write_timeout (writeFailed).
// c is the request's Ctx for a response held whole (nil without one), which a failed write's
// log line names (cutlog.go); a streamed response's end logs its own cut.
func (s *Server) writeResponse(w http.ResponseWriter, rc h2Control, head bool, ctx context.Context, st *h2stream, c *Ctx) (abort bool) {
	resp := &st.fc.Response
	own, _ := w.(*h2cstream)
	var hdr http.Header
	trailers := false
	if own != nil {
		// The engine's own server encodes the fields from the response itself, less the same
		// forbidden ones (h2cstream.encodeFields): no map of strings built per response.
		own.fh = &resp.Header
	} else {
		hdr = w.Header()
		for k, v := range resp.Header.All() {
			name := string(k)
			switch name {
			case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Content-Length":
				continue
			}
			hdr[name] = append(hdr[name], string(v))
		}
	}
	for range resp.Header.Trailers() {
		trailers = true
		break
	}
	status := resp.StatusCode()
	write := st.timeouts.WriteTimeout.D()
	if write > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(write))
	}
	if !resp.IsBodyStream() {
		body := resp.Body()
		switch {
		case head:
			if cl := resp.Header.ContentLength(); cl >= 0 {
				setContentLength(w, hdr, cl)
			}
		case status >= 200 && status != fasthttp.StatusNoContent && status != fasthttp.StatusNotModified && !trailers:
			setContentLength(w, hdr, len(body))
		}
		w.WriteHeader(status)
		if len(body) > 0 && !head {
			if _, err := w.Write(body); err != nil {
				return s.writeFailed(st, c, err)
			}
		}
		if trailers {
			setTrailers(w, &resp.Header)
		}
		return
	}
	if cl := resp.Header.ContentLength(); cl >= 0 && !trailers {
		setContentLength(w, hdr, cl)
	}
	w.WriteHeader(status)
	if err := rc.FlushError(); err != nil {
		noteCut(resp, &ResponseCutError{Err: err}) // respfinish.go: the client went away
		return
	}
	if write > 0 {
		_ = rc.SetWriteDeadline(time.Time{}) // the header is out; the body may be a while
	}
	if st.copy == nil {
		st.copy = make([]byte, h2CopyBuffer)
	}
	src := resp.BodyStream()
	// write_timeout bounds each write's progress, not the whole stream (server-sent events,
	// downloads): the deadline is set before a write and taken off after one that may be
	// followed by a wait for the upstream (a short read). Each change is a message to the
	// connection's goroutine, so a download's deadline moves at most a few times per timeout.
	armed, armedAt := false, time.Time{}
	for {
		n, err := src.Read(st.copy)
		if n > 0 {
			if now := time.Now(); write > 0 && (!armed || now.Sub(armedAt) > write/4) {
				_ = rc.SetWriteDeadline(now.Add(write))
				armed, armedAt = true, now
			}
			if _, werr := w.Write(st.copy[:n]); werr != nil {
				return s.writeFailed(st, c, werr)
			}
			if ferr := rc.FlushError(); ferr != nil {
				noteCut(resp, &ResponseCutError{Err: ferr})
				return
			}
			if armed && n < len(st.copy) {
				_ = rc.SetWriteDeadline(time.Time{})
				armed = false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				noteCut(resp, &ResponseCutError{Err: cerr})
				return // the client went away (the balancer ended the upstream's body for it)
			}
			noteCut(resp, &ResponseCutError{Upstream: true, Err: err}) // logged at the stream's end
			return true
		}
	}
	// The trailers' values arrive with the stream's end (balancer: trailersTo).
	for range resp.Header.Trailers() {
		setTrailers(w, &resp.Header)
		break
	}
	return false
}

// writeFailed is how writeResponse ends after a write to the stream failed, and whether the
// stream must be reset. A write that got no flow-control credit from the client within
// write_timeout (the engine's own server; net/http's resets the stream itself) leaves the
// stream open: it is reset, not ended with END_STREAM as if the client had the whole body. Any
// other failure found the stream or its connection gone already.
func (s *Server) writeFailed(st *h2stream, c *Ctx, err error) (abort bool) {
	cut := &ResponseCutError{Err: err}
	if !noteCut(&st.fc.Response, cut) {
		s.logCut(c, &st.fc, st.id, cut) // a held body: no stream's end to log it
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// setContentLength sets the response's content-length: on the engine's own server the stream's
// length itself, on net/http's the header field (hdr is w's header map).
func setContentLength(w http.ResponseWriter, hdr http.Header, n int) {
	if own, ok := w.(*h2cstream); ok {
		own.clen, own.sendLen = int64(n), true
		return
	}
	hdr["Content-Length"] = []string{strconv.Itoa(n)}
}

// setTrailers has the response's trailer fields end the stream: on the engine's own server
// encoded from the response itself when the stream ends (no strings made per field), on
// net/http's put into w's header map as its trailers.
func setTrailers(w http.ResponseWriter, h *fasthttp.ResponseHeader) {
	if own, ok := w.(*h2cstream); ok && own.fh == h {
		own.fhTrailers = true
		return
	}
	hdr := w.Header()
	for name := range h.Trailers() {
		for _, v := range h.PeekAll(string(name)) {
			k := http.TrailerPrefix + string(name)
			hdr[k] = append(hdr[k], string(v))
		}
	}
}

// hold is Ctx.HoldResponse for an HTTP/2 stream: the bytes are the stream's until its response
// is written.
func (st *h2stream) hold(n int64) bool {
	if st.budget == nil {
		return true
	}
	if !st.budget.reserve(n) {
		return false
	}
	st.held += n
	return true
}

// quietLogger is the per-stream fasthttp logger: fasthttp would warn that Body reads a stream
// whole, which is what a filter that asks for the body wants.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// serveClassified serves rl with the accept loop: HTTP/1.x (if on) by fasthttp, HTTP/2 by
// net/http, each from a connListener the loop feeds.
func (s *Server) serveClassified(rl *resilientListener) error {
	s.limitsMu.Lock()
	s.guards = append(s.guards, rl)
	s.limitsMu.Unlock()
	var h1 *connListener
	if rl.lis.protos.Has(ProtoHTTP1) {
		h1 = newConnListener(rl.Addr())
		go func() { _ = s.srv.Serve(h1) }()
	}
	h2 := newConnListener(rl.Addr())
	if s.cfg.H2Server != H2ServerNetHTTP {
		go s.h2own.serve(h2)
	} else {
		go func() { _ = s.h2.Serve(h2) }()
	}
	err := s.acceptLoop(rl, h1, h2)
	if errors.Is(err, net.ErrClosed) {
		return nil // Shutdown
	}
	return err
}
