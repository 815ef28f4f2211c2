package engine

import (
	"errors"
	"io"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// A response whose body streams (the balancer's answer over max_response_bytes, every gRPC
// call's) is still being written after the request handler returned: its body, and for gRPC its
// status in the trailers, come after the pipeline's response phase and after Observer.EndRequest.
// What records the request's outcome — the server span, the otel_log record — asks to be told
// when that body has ended instead (Ctx.DeferFinish). The server then puts a respFinish in front
// of the body stream: the protocol's writer (fasthttp for HTTP/1.x, writeResponse for HTTP/2)
// reads the body through it and closes it once the last byte and the trailers are out, or the
// stream was cut; that close calls the finishers and only then releases the Ctx, which stays
// valid until then. A response that does not stream costs one comparison.

// ResponseFinisher is told that a streamed response has ended (see Ctx.DeferFinish).
type ResponseFinisher interface {
	// FinishResponse runs once the response's body has been written to its end (cut is nil;
	// the trailers, if any, are in c.Response.Header), or was cut (cut is a
	// *ResponseCutError). c is valid until it returns, and not after.
	FinishResponse(c *Ctx, cut error)
}

// ResponseCutError is why a streamed response ended before its end: the upstream's body failed
// (Upstream) or the client went away.
type ResponseCutError struct {
	Upstream bool
	Err      error
}

func (e *ResponseCutError) Error() string {
	if e.Upstream {
		return "response body cut: upstream failed: " + e.Err.Error()
	}
	return "response body cut: client went away: " + e.Err.Error()
}

func (e *ResponseCutError) Unwrap() error { return e.Err }

// errStreamNotEnded is a cut's cause when the writer closed the stream without an error but
// before its end (the connection closed under it).
var errStreamNotEnded = errors.New("closed before its end")

// maxFinishers bounds the finishers of one request (the observer and a few otel_log stages).
const maxFinishers = 4

// respFinish is a request's finishers and, once installed, the reader in front of its body
// stream. It lives in the Ctx, so installing it allocates nothing.
type respFinish struct {
	// on: the server calls the finishers (run). A pipeline run by anything else (a subrequest,
	// a test) never defers.
	on bool
	n  int
	fs [maxFinishers]ResponseFinisher

	// The installed stream.
	srv        *Server // logs a cut (cutlog.go)
	c          *Ctx
	inner      io.Reader // nil once closed
	eof        bool
	read       int64 // body bytes read by the writer
	readErr    error
	cut        error // set by the HTTP/2 writer, which knows who cut the stream
	release    bool  // ReleaseCtx once finished
	grpcStatus int   // a status noted by NoteGRPCStatus, plus one (0: none)
	// ended is the cut the finishers were told of, for GRPCStatusOf (nil: not cut).
	ended error
}

// DeferFinish asks for f.FinishResponse once the response's streamed body ends, and reports
// whether it will be called. It reports false, and f is never called, when the response does not
// stream or the server cannot follow it to its end (a subrequest, a pipeline run outside the
// server): the caller then finishes now. Finishers run in the order they asked.
func (c *Ctx) DeferFinish(f ResponseFinisher) bool {
	if !c.fin.on || c.fin.n == maxFinishers || !c.Response.IsBodyStream() {
		return false
	}
	c.fin.fs[c.fin.n] = f
	c.fin.n++
	return true
}

// finishLater follows a streamed response (streamed: c.Response.IsBodyStream()) to its end, to
// tell the finishers and to log a cut (cutlog.go): it reports true when c must not be released
// now (the stream's end does). With finishers but no stream (a later phase replaced it with a
// held answer) they run now.
func (c *Ctx) finishLater(s *Server, streamed bool) bool {
	if !streamed || c.Request.Header.IsHead() {
		if c.fin.n > 0 {
			c.finish(nil)
		}
		return false
	}
	f := &c.fin
	f.c, f.srv = c, s
	// A request whose body streams is never pooled again (Server.run): nor is it here.
	f.release = !c.Request.IsBodyStream()
	setResponseStream(c.Response, f)
	return true
}

// setResponseStream puts r in place of resp's body stream without closing the one it replaces
// (r reads it), as WrapResponseStream does.
func setResponseStream(resp *fasthttp.Response, f *respFinish) {
	field := (*io.Reader)(unsafe.Add(unsafe.Pointer(resp), respStreamOffset))
	f.inner = *field
	*field = f
}

func (f *respFinish) Read(p []byte) (int, error) {
	n, err := f.inner.Read(p)
	f.read += int64(n)
	if err == io.EOF {
		f.eof = true
	} else if err != nil && f.readErr == nil {
		f.readErr = err
	}
	return n, err
}

// CloseWithError is how fasthttp closes a body stream, with the error writing it ended with
// (nil from CloseBodyStream). respFinish has no Close: fasthttp would call both.
func (f *respFinish) CloseWithError(werr error) error {
	inner := f.inner
	if inner == nil {
		return nil
	}
	f.inner = nil
	err := closeStream(inner, werr)
	var cut error
	switch {
	case f.cut != nil:
		cut = f.cut
	case f.readErr != nil:
		cut = &ResponseCutError{Upstream: true, Err: f.readErr}
	case werr != nil:
		cut = &ResponseCutError{Err: werr}
	case !f.eof && !bodylessStatus(f.c.Response.StatusCode()):
		cut = &ResponseCutError{Err: errStreamNotEnded}
	}
	c := f.c
	if f.grpcStatus > 0 {
		GRPCWebStatus.Set(c, f.grpcStatus-1)
	}
	var ce *ResponseCutError
	if errors.As(cut, &ce) {
		// Who cut it, for the finishers' logs and traces: the upstream (UR) or the client (DC).
		if ce.Upstream {
			c.AddFlags(FlagUpstreamReset)
		} else {
			c.AddFlags(FlagClientGone)
		}
		var stream uint32
		if c.h2 != nil {
			stream = c.h2.id
		}
		f.srv.logCut(c, c.Fast, stream, ce)
	}
	c.finish(cut)
	if f.release {
		// Nothing reads c after this: fasthttp and the HTTP/2 writer only drop the stream.
		ReleaseCtx(c)
	}
	return err
}

func bodylessStatus(status int) bool {
	return status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
}

// finish runs the finishers.
func (c *Ctx) finish(cut error) {
	f := &c.fin
	f.ended = cut
	for i := 0; i < f.n; i++ {
		f.fs[i].FinishResponse(c, cut)
		f.fs[i] = nil
	}
	f.n = 0
}

// closeStream closes a body stream the way fasthttp would have.
func closeStream(r io.Reader, werr error) error {
	var err error
	if c, ok := r.(io.Closer); ok {
		err = c.Close()
	}
	if c, ok := r.(fasthttp.ReadCloserWithError); ok {
		if e := c.CloseWithError(werr); err == nil {
			err = e
		}
	}
	return err
}

// noteCut tells a followed stream (HTTP/2's writer) why it ended before its end, and reports
// whether resp's body is one: its end then logs the cut (cutlog.go).
func noteCut(resp *fasthttp.Response, cut *ResponseCutError) bool {
	f, ok := resp.BodyStream().(*respFinish)
	if ok && f.cut == nil {
		f.cut = cut
	}
	return ok
}

// NoteGRPCStatus keeps a gRPC call's status for logs and traces when a filter moves a streamed
// response's trailers out of the header at the body's end (gRPC-Web puts them in the body), where
// GRPCStatusOf would not find them. It does nothing when nothing follows the stream.
func NoteGRPCStatus(resp *fasthttp.Response, code int) {
	if resp == nil {
		return
	}
	if f, ok := resp.BodyStream().(*respFinish); ok && code >= 0 && code < 256 {
		f.grpcStatus = code + 1
	}
}

// StreamedBytes is, for a ResponseFinisher, how many bytes of the streamed response body were
// handed to the writer (the writer's last ones may not have reached a client that went away).
// ok is false for a response that did not stream, or before its end.
func (c *Ctx) StreamedBytes() (n int64, ok bool) {
	if c.fin.c != c || c.fin.inner != nil {
		return 0, false
	}
	return c.fin.read, true
}

// cutGRPCStatus is the status of a gRPC call whose streamed response was cut before its
// trailers: CANCELLED when the client went away, INTERNAL when the upstream failed (what the
// client reads from the stream's reset).
func (c *Ctx) cutGRPCStatus() (int, bool) {
	var ce *ResponseCutError
	if !errors.As(c.fin.ended, &ce) {
		return 0, false
	}
	if ce.Upstream {
		return GRPCInternal, true
	}
	return GRPCCancelled, true
}
