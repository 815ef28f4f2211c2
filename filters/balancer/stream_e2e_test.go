package balancer_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// Streamed request bodies and retries (stream.go).

// countingUpstream is a net/http upstream (it reads bodies as they stream) that counts the
// requests whose whole body it received.
func countingUpstream(t *testing.T, complete *atomic.Int64) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil && n == r.ContentLength {
			complete.Add(1)
		}
		fmt.Fprint(w, n)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rawTarget accepts connections and hands each to serve.
func rawTarget(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// readHead reads a request head from br.
func readHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			return nil
		}
	}
}

func streamedPut(t *testing.T, url string, size int64) (int, error) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestStreamedBodyNotRetriedOnceSent: a target that breaks off after taking part of a streamed
// body makes the request fail with 502, and the retry block (which would retry an idempotent
// request on a reset) does not send it to another target: its body is gone.
func TestStreamedBodyNotRetriedOnceSent(t *testing.T) {
	var complete, broken atomic.Int64
	good := countingUpstream(t, &complete)
	bad := rawTarget(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if readHead(br) != nil {
			return
		}
		_, _ = io.CopyN(io.Discard, br, 256<<10)
		broken.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset
		}
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
  target { address = %q }
  retry {
    attempts = 2
    on       = ["reset", "502", "connect_failure"]
  }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, bad, good))
	var ok, failed int
	for i := 0; i < 6; i++ {
		// 1 MiB: after the bad target's 256 KiB, what the client still sends fits in what
		// the gateway discards while it lingers (engine/linger.go, 1 MiB), so the 502 is
		// read, not lost to a reset.
		status, err := streamedPut(t, gw.URL+"/up", 1<<20)
		switch {
		case err == nil && status == 200:
			ok++
		case err == nil && status == 502:
			failed++
		default:
			t.Fatalf("request %d: status %d, %v; want 200 or 502", i, status, err)
		}
	}
	t.Logf("%d answered, %d failed; the good target took %d bodies, the bad one broke off %d", ok, failed, complete.Load(), broken.Load())
	if failed == 0 || broken.Load() == 0 {
		t.Fatalf("no request reached the target that breaks off (%d failed)", failed)
	}
	if int(complete.Load()) != ok {
		t.Errorf("the good target received %d whole bodies for %d answered requests: a streamed body was retried", complete.Load(), ok)
	}
	if int(broken.Load()) != failed {
		t.Errorf("%d requests failed but the bad target broke off %d", failed, broken.Load())
	}
}

// TestStreamedBodyRetriedBeforeSent: a connect failure leaves the streamed body unread, so the
// request goes to another target, whole.
func TestStreamedBodyRetriedBeforeSent(t *testing.T) {
	var complete atomic.Int64
	good := countingUpstream(t, &complete)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // connections to it are refused
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
  target { address = %q }
  retry {
    attempts = 2
    on       = ["connect_failure"]
  }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, dead, good))
	for i := 0; i < 4; i++ {
		if status, err := streamedPut(t, gw.URL+"/up", 1<<20); err != nil || status != 200 {
			t.Fatalf("request %d: status %d, %v; want 200", i, status, err)
		}
	}
	if complete.Load() != 4 {
		t.Errorf("the good target received %d whole bodies, want 4", complete.Load())
	}
}

// TestStreamedBodyEarlyAnswer: a target that answers before it has read the body (its own 413)
// and closes gets its answer to the client, which is still sending.
func TestStreamedBodyEarlyAnswer(t *testing.T) {
	target := rawTarget(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if readHead(br) != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig\n")
		// Read for a while (the kernel's buffers fill, the gateway's writes block), then close.
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = io.Copy(io.Discard, br)
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, target))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 64 << 20
	go func() {
		_, _ = fmt.Fprintf(conn, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
		_, _ = io.Copy(conn, io.LimitReader(zeros{}, size))
	}()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 413") {
		t.Fatalf("status line %q (%v), want the target's 413", line, err)
	}
}

// TestUpgradeWithStreamedBodyRefused: a request to switch protocols whose body streams is
// answered 400, and nothing reaches the target (the tunnel's request is written whole).
func TestUpgradeWithStreamedBodyRefused(t *testing.T) {
	var got atomic.Int64
	target := rawTarget(t, func(c net.Conn) {
		got.Add(1)
		_, _ = io.Copy(io.Discard, c)
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, target))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 16<<10, strings.Repeat("x", 16<<10))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk+"0\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Fatalf("status line %q (%v), want 400", line, err)
	}
	if got.Load() != 0 {
		t.Errorf("the target got %d connections, want none", got.Load())
	}
}
