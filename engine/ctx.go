package engine

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Ctx is the pooled per-request state. Don't keep it, or slices read from it, after your stage
// returns: it is reset and reused by another request.
type Ctx struct {
	Request  *fasthttp.Request
	Response *fasthttp.Response
	Fast     *fasthttp.RequestCtx

	// Failure is the first failure of the request, for logs and traces; never shown to the client.
	Failure error
	// Pipeline is the pipeline serving the request.
	Pipeline *Pipeline
	// Path is the normalized request path (percent-decoded where safe, dot segments resolved,
	// duplicate slashes merged) that routing and filters match on. The upstream gets the raw path.
	Path []byte
	// ClientAddr is the client's address as the server's trusted_proxies decide it.
	ClientAddr netip.Addr
	// Peer is the socket peer's address (a trusted proxy's, or the client's own).
	Peer netip.Addr
	// Listener is the name of the listener the request came through ("default" for the one the
	// server block describes).
	Listener string
	// Proto is the protocol version the client spoke, "HTTP/1.1", "HTTP/1.0" or "HTTP/2.0", as
	// the server received it (the request's own protocol bytes may be rewritten for the upstream).
	Proto string
	// peerText is Peer as text, formatted once per connection (nil: format it when asked).
	peerText []byte
	// Start is when the gateway began handling the request.
	Start time.Time
	// Context carries the request's trace span; filters pass it to anything they call.
	Context context.Context
	// ClientContext is done once the client has gone: its HTTP/2 stream was reset or its
	// connection closed. nil when the server cannot tell (HTTP/1.x: fasthttp does not say).
	// Terminals abort upstream work when it is done.
	ClientContext context.Context

	// Target is the upstream address of the last attempt, set by the balancer ("" if none).
	Target string
	// UpstreamTime is the time spent waiting on upstreams, set by the balancer.
	UpstreamTime time.Duration
	// Attempts counts upstream attempts, retries included.
	Attempts int
	// Flags say why the request ended as it did (respflags.go).
	Flags RespFlags
	// FromUpstream is true when the response the client gets came from an upstream, false when
	// the gateway made it (a filter's answer, a refusal, a failure).
	FromUpstream bool
	// upstream is the upstream a balancer that chooses per request sent the request to
	// (traffic.go); "": the pipeline's one.
	upstream string
	// rng is the state of the split's generator (draw, traffic.go); ReleaseCtx keeps it.
	rng uint64

	// TerminalState is the terminal's own per-request scratch state (the balancer's buffers),
	// which stays with the Ctx from one request to the next: ReleaseCtx keeps it, so that a
	// terminal needs no pool of its own. The terminal resets what it must before use.
	TerminalState any
	// ObserverState is the observer's per-request state (the tracer's), kept with the Ctx from
	// one request to the next like TerminalState, so that it needs no pool of its own.
	ObserverState any
	// target is the storage of the request's UpstreamTarget (NewUpstreamTarget), whose buffers
	// stay with the Ctx from one request to the next like TerminalState.
	target UpstreamTarget

	vals []any
	// body is the request body when it streams (stream.go); bodyLimit the server's
	// max_body_bytes, BufferBody's default bound.
	body      bodyStream
	bodyLimit int64
	// chunkBuf holds a small chunked request body (stream.go), reused from one request to the
	// next.
	chunkBuf []byte
	// h2 is the HTTP/2 stream the request came on (h2serve.go); nil for HTTP/1.x.
	h2 *h2stream
	// routeHops counts the times a `route` terminal routed the request again (route.go).
	routeHops uint8
	// entry and served are the pipeline routing chose first and the last one a `route` terminal
	// handed the request to (route.go); nil when no route terminal ran.
	entry, served *Pipeline
	// hdrScratch is the server's scratch memory for cleaning the request's headers (hopbyhop.go).
	hdrScratch []byte
	// fin follows a streamed response to its end for DeferFinish (respfinish.go).
	fin respFinish
	// times are the request's per-stage timings, recorded while an Observer is installed
	// (stagetimes.go).
	times stageTimes
}

var ctxPool = sync.Pool{New: func() any { return new(Ctx) }}

// AcquireCtx returns a reset Ctx bound to a fasthttp request. ReleaseCtx returns it.
func AcquireCtx(fc *fasthttp.RequestCtx) *Ctx {
	c := ctxPool.Get().(*Ctx)
	c.Fast = fc
	c.Request = &fc.Request
	c.Response = &fc.Response
	c.Context = context.Background()
	return c
}

// ReleaseCtx resets c and returns it to the pool.
func ReleaseCtx(c *Ctx) {
	c.Request, c.Response, c.Fast = nil, nil, nil
	c.Failure = nil
	c.Pipeline = nil
	c.Path = c.Path[:0]
	c.ClientAddr = netip.Addr{}
	c.Peer = netip.Addr{}
	c.Listener = ""
	c.Proto = ""
	c.peerText = nil
	c.Start = time.Time{}
	c.Context = nil
	c.ClientContext = nil
	c.h2 = nil
	c.Target = ""
	c.UpstreamTime = 0
	c.Attempts = 0
	c.Flags = 0
	c.FromUpstream = false
	c.upstream = ""
	c.body = bodyStream{}
	c.bodyLimit = 0
	c.routeHops = 0
	c.entry, c.served = nil, nil
	clear(c.vals)
	if c.fin.c != nil || c.fin.n != 0 {
		c.fin = respFinish{} // a followed stream's (respfinish.go)
	}
	c.fin.on = false
	c.times.reset()
	ctxPool.Put(c)
}

// AppendPeer appends Peer as text (as netip.Addr.AppendTo would, without formatting it again
// for every request of a connection).
func (c *Ctx) AppendPeer(dst []byte) []byte {
	if c.peerText != nil {
		return append(dst, c.peerText...)
	}
	return c.Peer.AppendTo(dst)
}

// Fail answers the request with status and a short standard body, and records err as the
// request's failure (the first one wins). err never reaches the client. It returns Respond so a
// filter can write `return c.Fail(503, err)`.
func (c *Ctx) Fail(status int, err error) Verdict {
	if c.Failure == nil {
		c.Failure = err
	}
	WriteError(c.Response, status)
	return Respond
}

// WriteError replaces resp with a short standard text response for status.
func WriteError(resp *fasthttp.Response, status int) {
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentTypeBytes(textPlain)
	resp.AppendBodyString(fasthttp.StatusMessage(status))
	resp.AppendBodyString("\n")
}

var textPlain = []byte("text/plain; charset=utf-8")

// Key is a typed per-request slot shared between filters: jwt sets the claims, and rate_limit,
// authorize, otel_log and the balancer's hash policy read them, without importing each other.
// Declare keys at package level with NewKey. T should be pointer-shaped (a pointer, map, or
// interface holding one) so storing it does not allocate.
type Key[T any] struct {
	id   int
	name string
}

var keyCount atomic.Int32

// NewKey declares a key; call it from a package-level var declaration.
func NewKey[T any](name string) Key[T] {
	return Key[T]{id: int(keyCount.Add(1)) - 1, name: name}
}

// Name returns the key's name, for debugging.
func (k Key[T]) Name() string { return k.name }

// Get returns the value set for this request, if any.
func (k Key[T]) Get(c *Ctx) (T, bool) {
	var zero T
	if k.id >= len(c.vals) || c.vals[k.id] == nil {
		return zero, false
	}
	v, ok := c.vals[k.id].(T)
	return v, ok
}

// Set stores v for this request.
func (k Key[T]) Set(c *Ctx, v T) {
	if k.id >= len(c.vals) {
		// Grows once per pooled Ctx; later requests reuse the slice.
		n := int(keyCount.Load())
		vals := make([]any, n)
		copy(vals, c.vals)
		c.vals = vals
	}
	c.vals[k.id] = v
}

// ProtoOf returns the protocol version of a request as it was received ("HTTP/1.1" or
// "HTTP/1.0": fasthttp parses nothing else), without allocating.
func ProtoOf(h *fasthttp.RequestHeader) string {
	if h.IsHTTP11() {
		return "HTTP/1.1"
	}
	return "HTTP/1.0"
}
