// Package grpcweb implements the "grpc_web" filter kind: browsers' gRPC-Web calls
// (application/grpc-web, application/grpc-web-text) become gRPC calls to the upstream, and the
// upstream's gRPC responses become gRPC-Web responses, trailers included.
//
// A gRPC-Web request is a gRPC request an HTTP/1.1 client can send: the same length-prefixed
// messages, in base64 for -text. The response cannot carry HTTP trailers (browsers do not show
// them to pages), so the gRPC trailers (grpc-status, grpc-message, custom ones) travel at the
// end of the body in a frame of their own, flagged 0x80, as "name: value\r\n" lines. A
// trailers-only response (a call that failed before its first message, grpc-status in the
// headers) stays as it is: the clients read the status from the headers.
//
// The filter also answers CORS preflights for the origins it is given, since gRPC-Web pages
// usually come from another origin than the API.
package grpcweb

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// Register declares the "grpc_web" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "grpc_web", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		return New(cfg), nil
	})
}

// mode is how a request's client speaks gRPC-Web, kept for its response phase.
type mode uint8

const (
	binaryMode mode = iota + 1 // application/grpc-web[+fmt]
	textMode                   // application/grpc-web-text[+fmt]: base64 both ways
)

// modeKey is set for a request the filter translated. A uint8 in an interface does not allocate.
var modeKey = engine.NewKey[mode]("grpc_web.mode")

// Filter translates gRPC-Web. Requests of other content types pass through untouched, without
// allocating.
type Filter struct {
	allowAll     bool     // allow_origins has "*"
	origins      []string // lower case
	credentials  bool
	allowHeaders []byte // joined with ", "
	expose       []byte
	maxAge       []byte // seconds; nil: not sent
}

// New builds the filter.
func New(cfg *Config) *Filter {
	f := &Filter{credentials: cfg.AllowCredentials}
	for _, o := range cfg.AllowOrigins {
		if o == "*" {
			f.allowAll = true
			continue
		}
		f.origins = append(f.origins, strings.ToLower(o))
	}
	f.allowHeaders = []byte(strings.Join(cfg.AllowHeaders, ", "))
	f.expose = []byte(strings.Join(cfg.ExposeHeaders, ", "))
	if s := int64(cfg.MaxAge.D().Seconds()); s > 0 {
		f.maxAge = strconv.AppendInt(nil, s, 10)
	}
	return f
}

var (
	webPrefix     = []byte("application/grpc-web")
	grpcPrefix    = []byte("application/grpc")
	textInfix     = []byte("-text")
	webTextPrefix = []byte("application/grpc-web-text")
)

// parseWebType classifies a request's Content-Type: a gRPC-Web mode and the "+fmt" suffix
// (+proto, +json), or 0 for anything else.
func parseWebType(ct []byte) (mode, []byte) {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = bytes.TrimRight(ct[:i], " \t")
	}
	if len(ct) < len(webPrefix) || !ascii.EqualFold(ct[:len(webPrefix)], webPrefix) {
		return 0, nil
	}
	rest, m := ct[len(webPrefix):], binaryMode
	if len(rest) >= len(textInfix) && ascii.EqualFold(rest[:len(textInfix)], textInfix) {
		rest, m = rest[len(textInfix):], textMode
	}
	if len(rest) > 0 && rest[0] != '+' {
		return 0, nil // application/grpc-webfoo
	}
	return m, rest
}

// grpcSuffix returns the "+fmt" of a gRPC response Content-Type, and whether it is one.
func grpcSuffix(ct []byte) ([]byte, bool) {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = bytes.TrimRight(ct[:i], " \t")
	}
	if len(ct) < len(grpcPrefix) || !ascii.EqualFold(ct[:len(grpcPrefix)], grpcPrefix) {
		return nil, false
	}
	rest := ct[len(grpcPrefix):]
	if len(rest) > 0 && rest[0] != '+' {
		return nil, false // application/grpc-web from an upstream that speaks it itself
	}
	return rest, true
}

// OnRequest answers CORS preflights and turns a gRPC-Web request into a gRPC one.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	h := &c.Request.Header
	if h.IsOptions() {
		return f.preflight(c)
	}
	m, suffix := parseWebType(h.ContentType())
	if m == 0 {
		return engine.Continue
	}
	modeKey.Set(c, m)
	var buf [64]byte
	// The HTTP/2 upstream transport adds "te: trailers" to every gRPC request.
	h.SetContentTypeBytes(append(append(buf[:0], grpcPrefix...), suffix...))
	if m == textMode {
		if c.Request.IsBodyStream() {
			engine.WrapRequestStream(c.Request, func(src io.Reader) io.Reader { return &textDecoder{src: src} })
			h.SetContentLength(-1)
		} else if err := decodeBody(c.Request); err != nil {
			return c.Fail(fasthttp.StatusBadRequest, err)
		}
	}
	return engine.Continue
}

// decodeBody decodes a held grpc-web-text request body in place of the base64.
func decodeBody(req *fasthttp.Request) error {
	bp := bufPool.Get().(*[]byte)
	out, err := appendDecodeText((*bp)[:0], req.Body())
	if err != nil {
		putBuf(bp, out)
		return fmt.Errorf("grpc_web: %w", err)
	}
	// The decoded body takes the request's buffer's place; the old buffer goes to the pool.
	n := len(out)
	putBuf(bp, req.SwapBody(out))
	req.Header.SetContentLength(n)
	return nil
}

// bufPool holds the buffers bodies are decoded and encoded into; they trade places with the
// buffers of the bodies they replace.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// putBuf returns b to the pool in bp, unless it is too large to keep around.
func putBuf(bp *[]byte, b []byte) {
	if cap(b) > 1<<20 {
		return
	}
	*bp = b[:0]
	bufPool.Put(bp)
}

// OnResponse turns a gRPC response into a gRPC-Web one and adds the CORS headers.
func (f *Filter) OnResponse(c *engine.Ctx) {
	m, ok := modeKey.Get(c)
	if !ok {
		return
	}
	f.corsHeaders(c)
	prefix := webPrefix
	if m == textMode {
		prefix = webTextPrefix
	}
	// The request says again what the client sent: the filters' response phases log it, and a
	// reply the gateway makes itself (a 401, a 503) becomes a gRPC status in the client's own
	// content type where the response leaves the engine.
	var buf [64]byte
	if suffix, ok := grpcSuffix(c.Request.Header.ContentType()); ok {
		c.Request.Header.SetContentTypeBytes(append(append(buf[:0], prefix...), suffix...))
	}
	resp := c.Response
	h := &resp.Header
	suffix, isGRPC := grpcSuffix(h.ContentType())
	if !isGRPC {
		return
	}
	h.SetContentTypeBytes(append(append(buf[:0], prefix...), suffix...))
	if resp.IsBodyStream() {
		engine.WrapResponseStream(resp, func(src io.Reader) io.Reader {
			return &webStream{src: src, resp: resp, hdr: h, text: m == textMode}
		})
		h.SetContentLength(-1)
		return
	}
	f.translateHeld(c, m)
}

// translateHeld appends the trailer frame to a held body, and encodes it for -text.
func (f *Filter) translateHeld(c *engine.Ctx, m mode) {
	resp := c.Response
	h := &resp.Header
	bp := bufPool.Get().(*[]byte)
	frame, hasTrailers := appendTrailerFrame((*bp)[:0], h)
	if hasTrailers {
		// Logs and traces read the call's status after this phase: keep it where they look.
		if code, ok := statusCode(h.Peek("Grpc-Status")); ok {
			engine.GRPCWebStatus.Set(c, code)
		}
		dropTrailers(h)
	}
	// The new body is composed in a buffer of the pool that then takes the body's place (not
	// AppendBody, which would drop a body set with SetBodyRaw).
	if m == binaryMode && hasTrailers {
		out := bufPool.Get().(*[]byte)
		b := append(append((*out)[:0], resp.Body()...), frame...)
		putBuf(out, resp.SwapBody(b))
	}
	if m == textMode {
		out := bufPool.Get().(*[]byte)
		enc := base64.StdEncoding.AppendEncode((*out)[:0], resp.Body())
		if hasTrailers {
			enc = base64.StdEncoding.AppendEncode(enc, frame)
		}
		putBuf(out, resp.SwapBody(enc))
	}
	putBuf(bp, frame)
}

// statusCode parses a grpc-status value (0 to 255; gRPC's codes end at 16).
func statusCode(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 3 {
		return 0, false
	}
	n := 0
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int(b-'0')
	}
	return n, n < 256
}
