package engine_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// The server sends a complete response's last write with the read that waits for the next
// request (clientConn.Write). These tests check the cases where holding it would be wrong.

// TestPipelinedResponseNotHeldBehindNext: two requests in one segment. The second is handled
// without a read in between, so the first response, held for that read, must go out when the
// second starts, not after it: here the second waits on its upstream until the client has the
// first response.
func TestPipelinedResponseNotHeldBehindNext(t *testing.T) {
	release := make(chan struct{})
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/slow" {
			<-release
		}
		c.SetBodyString("body of " + string(c.Path()))
	})
	gw := gatewaytest.Start(t, serverConfig("", up))
	unblockOnCleanup(t, release)
	conn := sendRaw(t, gw.Addr, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	readBody(t, br, "body of /fast")
	close(release) // only now may the second request finish
	readBody(t, br, "body of /slow")
}

// TestStreamedResponseNotHeld: a response streamed to the client (larger than
// max_response_bytes) is written as it comes, none of it held: the client gets the first part
// while the upstream still waits to send the rest.
func TestStreamedResponseNotHeld(t *testing.T) {
	release := make(chan struct{})
	first := strings.Repeat("a", 2048)
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		c.SetBodyStreamWriter(func(w *bufio.Writer) {
			_, _ = w.WriteString(first)
			_ = w.Flush()
			<-release
			_, _ = w.WriteString("end")
		})
	})
	gw := gatewaytest.Start(t, serverConfig(`
  max_response_bytes = "1KiB"`, up))
	unblockOnCleanup(t, release)
	conn := sendRaw(t, gw.Addr, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatalf("first part of a streamed response, while the upstream holds the rest: %v", err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(got)+string(rest) != first+"end" {
		t.Fatalf("streamed body: %d bytes then %q, %v; want %d bytes then \"end\"", len(got), rest, err, len(first))
	}
}

// TestKeepAliveAfterEarlyRequest: the client sends its next request before reading the previous
// response, in a segment of its own, while the gateway is still waiting on the upstream. That
// request is already in when the response goes out with the read for the next one, so that read
// does not see it arrive; the watchdog ends the read's wait (clientConn.poke) and the request is
// answered within a tick or two, not at the idle timeout.
func TestKeepAliveAfterEarlyRequest(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/first" {
			arrived <- struct{}{}
			<-release
		}
		c.SetBodyString("body of " + string(c.Path()))
	})
	// Timeouts of 1 s make the watchdog tick every 100 ms; the idle timeout is long.
	gw := gatewaytest.Start(t, serverConfig(`
  read_timeout  = "1s"
  write_timeout = "1s"
  idle_timeout  = "30s"`, up))
	unblockOnCleanup(t, release)
	conn := sendRaw(t, gw.Addr, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	<-arrived
	if _, err := io.WriteString(conn, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Let the gateway's runtime see the second request arrive while nobody reads it.
	time.Sleep(50 * time.Millisecond)
	close(release)

	start := time.Now()
	br := bufio.NewReader(conn)
	readBody(t, br, "body of /first")
	readBody(t, br, "body of /second")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the early request was answered after %v, want within a few 100 ms ticks", d)
	}
	// The connection still serves requests after its wait was ended.
	for i := 0; i < 3; i++ {
		if _, err := io.WriteString(conn, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		readBody(t, br, "body of /again")
	}
}

// TestHalfClosedClientAnswered: a client that ends its input after its request (shutdown of its
// write side) still gets the response, and the gateway then closes the connection.
func TestHalfClosedClientAnswered(t *testing.T) {
	gw := gatewaytest.Start(t, serverConfig(`
  read_timeout  = "1s"
  write_timeout = "1s"
  idle_timeout  = "30s"`, echoUpstream(t, "u")))
	conn := sendRaw(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	br := bufio.NewReader(conn)
	readBody(t, br, "")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the response: %v, want the gateway to close the connection", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed %v after the client's end of input, want within a few 100 ms ticks", d)
	}
}

// unblockOnCleanup closes release when the test ends, if the test has not: registered after the
// gateway starts, it runs before the gateway's shutdown, which waits for requests blocked on it.
func unblockOnCleanup(t *testing.T, release chan struct{}) {
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
}

// sendRaw connects to the gateway, writes raw, and returns the connection (closed when the test
// ends, reads and writes bounded by 10 s).
func sendRaw(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readBody reads the next response, which must be a 200 with this body ("": any body).
func readBody(t *testing.T, br *bufio.Reader, want string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response with %q: %v", want, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || (want != "" && string(body) != want) {
		t.Fatalf("%d %q, want 200 %q", resp.StatusCode, body, want)
	}
}
