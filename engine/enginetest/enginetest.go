// Package enginetest runs filters against synthetic requests, without sockets: build a Ctx with
// NewCtx, then run one filter's phases, or a whole pipeline ending in a function, with Serve.
package enginetest

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// NewCtx returns a Ctx for a request with method and uri (a path with query, or an absolute URL),
// from client 127.0.0.1, headers given as name/value pairs. It is released at the end of the test.
func NewCtx(t testing.TB, method, uri string, headers ...string) *engine.Ctx {
	t.Helper()
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	fc := new(fasthttp.RequestCtx)
	fc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	c := engine.AcquireCtx(fc)
	c.Start = time.Now()
	c.Proto = engine.ProtoOf(&fc.Request.Header)
	c.ClientAddr = netip.MustParseAddr("127.0.0.1")
	c.Peer = c.ClientAddr
	raw, _ := engine.RawPath(&fc.Request)
	c.Path = engine.NormalizePath(c.Path[:0], raw)
	t.Cleanup(func() { engine.ReleaseCtx(c) })
	return c
}

// Serve runs c through filters in order, ending in term (which writes the upstream's response),
// exactly as a pipeline named "test" would.
func Serve(c *engine.Ctx, term func(c *engine.Ctx), filters ...engine.Filter) {
	stages := make([]engine.Stage, len(filters))
	for i, f := range filters {
		stages[i] = engine.Stage{Kind: "test", Filter: f}
	}
	p := engine.NewPipeline("test", engine.MatchConfig{}, "", stages, engine.TerminalFunc(term))
	p.Serve(c)
}

// OK is a terminal answering 200 with body "ok".
func OK(c *engine.Ctx) {
	c.Response.SetStatusCode(fasthttp.StatusOK)
	c.Response.Header.SetContentType("text/plain")
	c.Response.SetBodyString("ok")
}
