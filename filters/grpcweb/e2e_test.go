package grpcweb_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

func gatewayConfig(upstream, down string) string {
	return fmt.Sprintf(`
server {
  max_response_bytes = "1KiB"
}
upstream "grpc" {
  target {
    address = %q
  }
}
upstream "down" {
  target {
    address = %q
  }
}
pipeline "down" {
  match {
    path_prefix = "/down.Svc/"
  }
  filter "grpc_web" {
    allow_origins = ["https://app.example"]
  }
  balancer {
    upstream = upstream.down
  }
}
pipeline "web" {
  match {
    path_prefix = "/"
  }
  filter "grpc_web" {
    allow_origins = ["https://app.example"]
  }
  balancer {
    upstream = upstream.grpc
  }
}
`, upstream, down)
}

func msgFrame(flag byte, msg string) []byte {
	b := []byte{flag, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// readFrame reads one gRPC-Web frame from r (decoding base64 four characters at a time when
// text is set).
func readFrame(t *testing.T, r io.Reader) (flag byte, payload string) {
	t.Helper()
	head := make([]byte, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatalf("reading a frame header: %v", err)
	}
	p := make([]byte, binary.BigEndian.Uint32(head[1:]))
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return head[0], string(p)
}

// textReader decodes grpc-web-text as it arrives, four characters at a time.
type textReader struct {
	r   io.Reader
	out []byte
}

func (t *textReader) Read(p []byte) (int, error) {
	for len(t.out) == 0 {
		var q [4]byte
		if _, err := io.ReadFull(t.r, q[:]); err != nil {
			return 0, err
		}
		b, err := base64.StdEncoding.DecodeString(string(q[:]))
		if err != nil {
			return 0, err
		}
		t.out = b
	}
	n := copy(p, t.out)
	t.out = t.out[n:]
	return n, nil
}

// TestEndToEndHTTP1Upstream runs gRPC-Web calls through a real gateway to an upstream that
// answers like a gRPC server over HTTP/1.1 (chunked, trailers): a unary call in both encodings
// and a server stream whose messages reach the client one by one, the trailer frame last.
func TestEndToEndHTTP1Upstream(t *testing.T) {
	release := make(chan struct{})
	type seen struct{ ct, body string }
	got := make(chan seen, 4)
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		got <- seen{string(ctx.Request.Header.ContentType()), string(ctx.Request.Body())}
		h := &ctx.Response.Header
		h.SetContentType("application/grpc+proto")
		_ = h.AddTrailer("Grpc-Status, Grpc-Message")
		h.Set("Grpc-Status", "0")
		h.Set("Grpc-Message", "done")
		if string(ctx.Path()) != "/test.Svc/Stream" {
			ctx.Response.SetBodyStream(bytes.NewReader(msgFrame(0, "pong")), -1)
			return
		}
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			w.Write(msgFrame(0, strings.Repeat("a", 2000))) // over max_response_bytes: streamed
			w.Flush()
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			w.Write(msgFrame(0, "second"))
		})
	})
	gw := gatewaytest.Start(t, gatewayConfig(up, closedPort(t)))
	client := &http.Client{Timeout: 20 * time.Second}

	for _, text := range []bool{false, true} {
		ct := "application/grpc-web+proto"
		body := msgFrame(0, "ping")
		if text {
			ct = "application/grpc-web-text+proto"
			body = []byte(base64.StdEncoding.EncodeToString(body))
		}
		t.Run(ct, func(t *testing.T) {
			req, _ := http.NewRequest("POST", gw.URL+"/test.Svc/Unary", bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Origin", "https://app.example")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			s := <-got
			// TE is hop-by-hop on HTTP/1.1: the balancer removes it (an HTTP/2 upstream gets
			// "te: trailers" from its transport).
			if s.ct != "application/grpc+proto" || s.body != string(msgFrame(0, "ping")) {
				t.Errorf("upstream saw %+v", s)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct ||
				resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
				t.Errorf("status %d, headers %v", resp.StatusCode, resp.Header)
			}
			var r io.Reader = resp.Body
			if text {
				r = &textReader{r: r}
			}
			if f, p := readFrame(t, r); f != 0 || p != "pong" {
				t.Errorf("first frame %#x %q", f, p)
			}
			if f, p := readFrame(t, r); f != 0x80 || p != "grpc-status: 0\r\ngrpc-message: done\r\n" {
				t.Errorf("trailer frame %#x %q", f, p)
			}
			if rest, _ := io.ReadAll(r); len(rest) != 0 || len(resp.Trailer) != 0 {
				t.Errorf("after the trailer frame: %q, HTTP trailers %v", rest, resp.Trailer)
			}
		})
	}

	for _, text := range []bool{false, true} {
		ct := "application/grpc-web"
		if text {
			ct = "application/grpc-web-text"
		}
		t.Run("stream "+ct, func(t *testing.T) {
			req, _ := http.NewRequest("POST", gw.URL+"/test.Svc/Stream", bytes.NewReader(nil))
			req.Header.Set("Content-Type", ct)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			<-got
			if resp.Header.Get("Content-Type") != ct+"+proto" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			var r io.Reader = resp.Body
			if text {
				r = &textReader{r: r}
			}
			// The first message arrives while the upstream still holds the second back.
			if _, p := readFrame(t, r); len(p) != 2000 {
				t.Errorf("first message %d bytes", len(p))
			}
			release <- struct{}{}
			if _, p := readFrame(t, r); p != "second" {
				t.Errorf("second message %q", p)
			}
			if f, p := readFrame(t, r); f != 0x80 || p != "grpc-status: 0\r\ngrpc-message: done\r\n" {
				t.Errorf("trailer frame %#x %q", f, p)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestEndToEndGatewayReply: a reply the gateway makes itself (here the balancer's, the upstream
// being down) reaches a gRPC-Web client as a trailers-only response in its own content type, the
// status in grpc-status, with the CORS headers that let the page read it.
func TestEndToEndGatewayReply(t *testing.T) {
	gw := gatewaytest.Start(t, gatewayConfig(closedPort(t), closedPort(t)))
	client := &http.Client{Timeout: 20 * time.Second}
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text"} {
		req, _ := http.NewRequest("POST", gw.URL+"/down.Svc/Call", strings.NewReader("AAAAAAA="))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Origin", "https://app.example")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantCT := "application/grpc-web"
		if strings.Contains(ct, "text") {
			wantCT = "application/grpc-web-text"
		}
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Type") != wantCT || h.Get("Grpc-Status") != "14" || len(body) != 0 {
			t.Errorf("%s: status %d, headers %v, body %q; want 200, %s, grpc-status 14 (UNAVAILABLE), no body",
				ct, resp.StatusCode, h, body, wantCT)
		}
		if h.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "grpc-status") {
			t.Errorf("%s: CORS headers missing: %v", ct, h)
		}
	}
}
