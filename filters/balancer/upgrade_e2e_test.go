package balancer_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// echoTunnelUpstream answers an upgrade with 101 and then echoes bytes, upper-cased, until the
// client closes; other requests get 426.
func echoTunnelUpstream(t *testing.T) string {
	return gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if !strings.EqualFold(string(c.Request.Header.Peek("Upgrade")), "websocket") {
			c.SetStatusCode(fasthttp.StatusUpgradeRequired)
			c.SetBodyString("upgrade required\n")
			return
		}
		c.SetStatusCode(fasthttp.StatusSwitchingProtocols)
		c.Response.Header.Set("Upgrade", "websocket")
		c.Response.Header.Set("Connection", "Upgrade")
		c.Response.Header.Set("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
		c.Response.Header.Set("X-Saw-Connection", string(c.Request.Header.Peek("Connection")))
		c.Hijack(func(conn net.Conn) {
			buf := make([]byte, 1024)
			for {
				n, err := conn.Read(buf)
				if n > 0 {
					_, _ = conn.Write([]byte(strings.ToUpper(string(buf[:n]))))
				}
				if err != nil {
					return
				}
			}
		})
	})
}

func TestWebSocketUpgradeIsTunnelled(t *testing.T) {
	up := echoTunnelUpstream(t)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  idle_timeout = "1s"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    response_add = { "X-Gateway" = "sluice" }
  }
  balancer { upstream = upstream.u }
}
`, up))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	var resp fasthttp.Response
	resp.SkipBody = true
	if err := resp.Header.Read(br); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 101 || string(resp.Header.Peek("Upgrade")) != "websocket" ||
		string(resp.Header.Peek("Sec-WebSocket-Accept")) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake answered %d with %q", resp.StatusCode(), resp.Header.String())
	}
	if got := string(resp.Header.Peek("X-Saw-Connection")); !strings.EqualFold(got, "upgrade") {
		t.Errorf("upstream saw Connection %q, want Upgrade", got)
	}
	if got := string(resp.Header.Peek("X-Gateway")); got != "sluice" {
		t.Errorf("response filters did not run on the 101: X-Gateway = %q", got)
	}
	for _, msg := range []string{"hello", "tunnel"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != strings.ToUpper(msg) {
			t.Errorf("tunnel echoed %q, want %q", got, strings.ToUpper(msg))
		}
	}
	// Idle for longer than idle_timeout: the gateway closes the tunnel.
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("read data from an idle tunnel")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("idle tunnel closed after %v, idle_timeout is 1s", d)
	}
}

func TestUpgradeRefusedIsAnOrdinaryResponse(t *testing.T) {
	up := echoTunnelUpstream(t)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 426 || string(resp.Body()) != "upgrade required\n" {
		t.Errorf("refused upgrade: %d %q, want 426 with the upstream's body", resp.StatusCode(), resp.Body())
	}
}
