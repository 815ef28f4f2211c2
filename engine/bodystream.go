package engine

import (
	"io"
	"reflect"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// WrapResponseStream puts wrap(s) in place of resp's body stream s, for a filter that rewrites
// a streamed body as it flows (gRPC-Web appends the trailers to it). It reports false, and
// does nothing, when resp has no body stream. Closing the new stream closes s once, as
// fasthttp would have closed s.
//
// fasthttp has no public way to do this: SetBodyStream closes the stream it replaces, which
// for the balancer's upstream stream gives the connection back before its body was read. So
// the unexported field is written directly, found by name when the package loads (a fasthttp
// that renamed it or changed its type makes every test panic, not a request misbehave).
func WrapResponseStream(resp *fasthttp.Response, wrap func(io.Reader) io.Reader) bool {
	return wrapStream((*io.Reader)(unsafe.Add(unsafe.Pointer(resp), respStreamOffset)), wrap)
}

// WrapRequestStream is WrapResponseStream for a streamed request body.
func WrapRequestStream(req *fasthttp.Request, wrap func(io.Reader) io.Reader) bool {
	return wrapStream((*io.Reader)(unsafe.Add(unsafe.Pointer(req), reqStreamOffset)), wrap)
}

var (
	respStreamOffset = streamField(reflect.TypeFor[fasthttp.Response]())
	reqStreamOffset  = streamField(reflect.TypeFor[fasthttp.Request]())
)

func streamField(t reflect.Type) uintptr {
	f, ok := t.FieldByName("bodyStream")
	if !ok || f.Type != reflect.TypeFor[io.Reader]() {
		panic("engine: fasthttp." + t.Name() + " has no bodyStream io.Reader field: WrapResponseStream needs updating")
	}
	return f.Offset
}

func wrapStream(field *io.Reader, wrap func(io.Reader) io.Reader) bool {
	inner := *field
	if inner == nil {
		return false
	}
	*field = &wrappedStream{Reader: wrap(inner), inner: inner}
	return true
}

// wrappedStream reads through the wrapper and closes the stream it wraps. fasthttp closes a
// body stream by calling Close and then, if it has one, CloseWithError: the first call closes
// the inner stream, the way fasthttp would have (CloseWithError with the error if the inner
// stream takes one, else Close).
type wrappedStream struct {
	io.Reader
	inner  io.Reader
	closed bool
}

func (s *wrappedStream) Close() error { return s.CloseWithError(nil) }

func (s *wrappedStream) CloseWithError(err error) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if c, ok := s.inner.(fasthttp.ReadCloserWithError); ok {
		var cerr error
		if cl, ok := s.inner.(io.Closer); ok {
			cerr = cl.Close()
		}
		if e := c.CloseWithError(err); cerr == nil {
			cerr = e
		}
		return cerr
	}
	if c, ok := s.inner.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
