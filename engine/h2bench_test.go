package engine_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// BenchmarkH2Proxy is the HTTP/2 rows' request in process: one h2c connection keeping 10
// streams open (as h2load -m10 does), each a GET that the engine's server hands to the empty
// pipeline's balancer, which forwards it to an HTTP/1.1 upstream answering 64 bytes. The client
// reuses its frames and never decodes the answers' fields, so the allocations reported are the
// gateway's and the upstream's (fasthttp's server allocates nothing per request).
func BenchmarkH2Proxy(b *testing.B) {
	for _, server := range h2Servers {
		b.Run(server, func(b *testing.B) { benchH2Proxy(b, server) })
	}
}

func benchH2Proxy(b *testing.B, server string) {
	body := bytes.Repeat([]byte("x"), 64)
	addr := gatewaytest.Upstream(b, func(c *fasthttp.RequestCtx) {
		c.SetContentType("text/plain")
		c.SetBody(body)
	})
	gw := gatewaytest.Start(b, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
  h2_server = %q
}
upstream "u" {
  target { address = %q }
}
pipeline "all" {
  balancer { upstream = upstream.u }
}
`, server, addr))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	bw := bufio.NewWriterSize(conn, 16<<10)
	fr := http2.NewFramer(bw, bufio.NewReaderSize(conn, 16<<10))
	fr.SetReuseFrames()
	if _, err := io.WriteString(bw, http2.ClientPreface); err != nil {
		b.Fatal(err)
	}
	// A large connection window, so that the benchmark needs no WINDOW_UPDATE of its own.
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<30); err != nil {
		b.Fatal(err)
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	id := uint32(1)
	open := func() {
		hbuf.Reset()
		for _, f := range [...]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
			{Name: ":path", Value: "/"}, {Name: ":authority", Value: gw.Addr}, {Name: "user-agent", Value: "h2load nghttp2/1.52.0"}} {
			_ = enc.WriteField(f)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			b.Fatal(err)
		}
		id += 2
	}
	const streams = 10
	// done reads frames until one stream ends; it fails the benchmark on anything but a 64-byte
	// answer's frames.
	done := func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				if f.StreamEnded() {
					return
				}
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					b.Fatal("an answer without a body")
				}
			case *http2.RSTStreamFrame:
				b.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
			case *http2.GoAwayFrame:
				b.Fatalf("GOAWAY %v", f.ErrCode)
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
					_ = bw.Flush()
				}
			}
		}
	}
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	// Warm up: pools, the upstream connections, the HPACK tables.
	for range 1000 {
		open()
		_ = bw.Flush()
		done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	inflight := 0
	for n := 0; n < b.N; n++ {
		for inflight < streams && n+inflight < b.N {
			open()
			inflight++
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		done()
		inflight--
	}
}
