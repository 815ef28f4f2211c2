package balancer

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// The forwarding work without sockets: what the balancer does to a request and a response on
// top of what any proxy does (serialize the request head, parse the response head and body).
// BenchmarkForwardBare is that floor; BenchmarkForward adds prepare, restore and finishResponse.

var benchResponse = []byte("HTTP/1.1 200 OK\r\nServer: up\r\nDate: Fri, 27 Nov 2026 00:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")

func benchForward(b *testing.B, sluice bool) {
	c := enginetest.NewCtx(b, "GET", "/api/items?page=2", "User-Agent", "wrk", "Accept", "*/*")
	c.Request.Header.SetHost("gateway.example")
	bw := bufio.NewWriterSize(io.Discard, 4096)
	src := bytes.NewReader(benchResponse)
	br := bufio.NewReaderSize(src, 4096)
	var client fasthttp.Request
	c.Request.CopyTo(&client)
	x := acquireExchange(c)
	b.ReportAllocs()
	for b.Loop() {
		// Each iteration starts from the client's request, as a server's next request would.
		client.CopyTo(c.Request)
		if sluice {
			x.prepare(c)
		}
		if !sluice {
			x.fwd = x.fwd[:0]
		}
		bw.Reset(io.Discard)
		if err := writeRequest(bw, c.Request, x); err != nil {
			b.Fatal(err)
		}
		if sluice {
			x.restore(c)
		}
		src.Reset(benchResponse)
		br.Reset(src)
		c.Response.ResetBody()
		if err := readHead(&c.Response.Header, br); err != nil {
			b.Fatal(err)
		}
		if err := c.Response.ReadBody(br, 1<<20); err != nil {
			b.Fatal(err)
		}
		if sluice {
			finishResponse(c, x)
		}
	}
	releaseExchange(x)
}

func BenchmarkForwardBare(b *testing.B) { benchForward(b, false) }
func BenchmarkForward(b *testing.B)     { benchForward(b, true) }
