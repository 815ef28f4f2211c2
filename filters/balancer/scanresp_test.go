package balancer

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestScanResponseHopMatchesScanHop: for responses as an upstream sends them, scanResponseHop
// finds the mask and Connection values scanHop finds over h.All(), but for the one documented
// difference (a repeated "close,").
func TestScanResponseHopMatchesScanHop(t *testing.T) {
	for _, head := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nServer: up\r\nDate: Mon, 07 Dec 2026 15:00:00 GMT\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.0 inner\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status, X-Checksum\r\nContent-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Forwarded-For: 10.0.0.1\r\nTraceparent: x\r\nTracestate: y\r\nTE: trailers\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A-Very-Long-Header-Name-Indeed: 1\r\nProxy-Authenticate: Basic\r\nHTTP2-Settings: AAA\r\nExpect: 100-continue\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n",
	} {
		var h fasthttp.ResponseHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(head))); err != nil {
			t.Fatalf("%q: %v", head, err)
		}
		wantConn, wantMask := scanHop(h.All(), nil)
		gotConn, gotMask := scanResponseHop(&h, nil)
		if gotMask != wantMask {
			t.Errorf("%q: mask %b, scanHop's %b", head, gotMask, wantMask)
		}
		if !bytes.Equal(gotConn, wantConn) && !bytes.Equal(gotConn, append(wantConn, "close,"...)) {
			t.Errorf("%q: Connection values %q, scanHop's %q", head, gotConn, wantConn)
		}
	}
}
