package balancer_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// TestUpstreamTrailersKept: an upstream's chunked response with trailers reaches an HTTP/1.1 client
// with its trailers when the gateway holds the body (under max_response_bytes); a trailer name
// announced but never sent is not announced to the client.
func TestUpstreamTrailersKept(t *testing.T) {
	addr, _ := rawUpstream(t, func(conn net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status, Grpc-Message, X-Unsent\r\nConnection: close\r\n\r\n"+
			"5\r\nhello\r\n0\r\nGrpc-Status: 0\r\nGrpc-Message: fine\r\n\r\n")
	})
	gw := gatewaytest.Start(t, config("", []string{addr}, ""))
	resp, body := rawRequest(t, gw.Addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("%d %q, want 200 hello", resp.StatusCode, body)
	}
	if got := resp.Trailer.Get("Grpc-Status") + "|" + resp.Trailer.Get("Grpc-Message"); got != "0|fine" {
		t.Errorf("trailers %v, want Grpc-Status 0 and Grpc-Message fine", resp.Trailer)
	}
	if _, ok := resp.Trailer["X-Unsent"]; ok || strings.Contains(strings.ToLower(resp.Header.Get("Trailer")), "x-unsent") {
		t.Errorf("a trailer the upstream announced but did not send is announced: %v", resp.Header)
	}
}

// TestUpstreamTrailersKeptWhenStreamed: the same for a chunked body larger than
// max_response_bytes, which is streamed to the client: its trailers follow it.
func TestUpstreamTrailersKeptWhenStreamed(t *testing.T) {
	chunk := strings.Repeat("s", 4096)
	addr, _ := rawUpstream(t, func(conn net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\nConnection: close\r\n\r\n")
		for range 8 {
			b.WriteString("1000\r\n" + chunk + "\r\n")
		}
		b.WriteString("0\r\nGrpc-Status: 7\r\n\r\n")
		_, _ = io.WriteString(conn, b.String())
	})
	gw := gatewaytest.Start(t, config(`  max_response_bytes = "8KiB"`, []string{addr}, ""))
	resp, body := rawRequest(t, gw.Addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || len(body) != 8*4096 {
		t.Fatalf("%d with %d bytes, want 200 with %d", resp.StatusCode, len(body), 8*4096)
	}
	if got := resp.Trailer.Get("Grpc-Status"); got != "7" {
		t.Errorf("trailers %v, want Grpc-Status 7", resp.Trailer)
	}
}
