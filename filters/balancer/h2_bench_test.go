package balancer_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// BenchmarkH2 serves one GET through the balancer (Upstream.Serve, no client socket) to a
// loopback upstream answering 64 bytes: over h2c to a net/http server, and for comparison over
// the HTTP/1.1 exchange to a fasthttp one. BenchmarkH2Bare is net/http's own client against the
// same h2c server: the floor of an HTTP/2 exchange in this process (upstream server included),
// so allocs/op of h2c minus Bare is what the gateway's HTTP/2 path adds.
func BenchmarkH2(b *testing.B) {
	body := make([]byte, 64)
	h2 := startH2Upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }), nil, 0)
	h1 := gatewaytest.Upstream(b, func(c *fasthttp.RequestCtx) { c.SetBody(body) })
	for _, tc := range []struct{ name, protocol, addr string }{{"h2c", "h2c", h2.Addr}, {"http1", "http1", h1}} {
		b.Run(tc.name, func(b *testing.B) {
			u := serveDirect(b, h2Config("", tc.protocol, []string{tc.addr}, "", ""))
			c := enginetest.NewCtx(b, "GET", "/bench", "User-Agent", "bench", "Accept", "*/*")
			c.Request.Header.SetHost("gateway.example")
			b.ReportAllocs()
			for b.Loop() {
				c.Response.Reset()
				u.Serve(c)
				if c.Response.StatusCode() != 200 || len(c.Response.Body()) != len(body) {
					b.Fatalf("%d %q %v", c.Response.StatusCode(), c.Response.Body(), c.Failure)
				}
			}
		})
	}
}

func BenchmarkH2Bare(b *testing.B) {
	body := make([]byte, 64)
	up := startH2Upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }), nil, 0)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+up.Addr+"/bench", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkH2GRPC is the gRPC rows' unary call through the balancer (Upstream.Serve, no client
// socket): a POST of one 69-byte gRPC message frame to an h2c net/http upstream that answers
// one frame and grpc-status in trailers, the response streamed back as the engine streams a
// gRPC answer. allocs/op holds the upstream server's own, as BenchmarkH2's do.
func BenchmarkH2GRPC(b *testing.B) {
	frame := make([]byte, 5+64)
	frame[4] = 64
	up := startH2Upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write(frame)
		w.Header().Set("Grpc-Status", "0")
	}), nil, 0)
	u := serveDirect(b, h2Config("", "h2c", []string{up.Addr}, "", ""))
	c := enginetest.NewCtx(b, "POST", "/grpc.testing.TestService/UnaryCall", "Content-Type", "application/grpc",
		"Te", "trailers", "User-Agent", "grpc-go/1.79.0")
	c.Request.Header.SetHost("gateway.example")
	b.ReportAllocs()
	for b.Loop() {
		c.Response.Reset()
		c.Request.SetBody(frame)
		u.Serve(c)
		n, err := io.Copy(io.Discard, c.Response.BodyStream())
		_ = c.Response.CloseBodyStream()
		if c.Response.StatusCode() != 200 || n != int64(len(frame)) || err != nil {
			b.Fatalf("%d, %d bytes, %v, %v", c.Response.StatusCode(), n, err, c.Failure)
		}
	}
}
