package engine_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// echoUpstream starts a testbed echo upstream named name.
func echoUpstream(t *testing.T, name string) string {
	return gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: name}).Handle)
}

func get(t *testing.T, method, url, host string) (int, upstream.Echo, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e upstream.Echo
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e, string(body)
}

func TestRouting(t *testing.T) {
	a, b, c := echoUpstream(t, "a"), echoUpstream(t, "b"), echoUpstream(t, "c")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "a" {
  target { address = %q }
}
upstream "b" {
  target { address = %q }
}
upstream "c" {
  target { address = %q }
}
pipeline "api" {
  match {
    hosts       = ["api.example.com"]
    path_prefix = "/v1/"
    methods     = ["GET", "POST"]
  }
  strip_prefix = "/v1"
  balancer { upstream = upstream.a }
}
pipeline "admin" {
  match {
    path_prefix = "/v1/admin/"
    methods     = ["DELETE"]
  }
  balancer { upstream = upstream.b }
}
pipeline "static" {
  match { path_prefix = "/static/" }
  balancer { upstream = upstream.c }
}
`, a, b, c))
	tests := []struct {
		method, path, host string
		status             int
		upstream, uri      string
	}{
		{"GET", "/v1/items?x=1", "api.example.com", 200, "a", "/items?x=1"},
		{"POST", "/v1/items", "api.example.com:8080", 200, "a", "/items"},
		{"DELETE", "/v1/admin/x", "api.example.com", 200, "b", "/v1/admin/x"},
		{"DELETE", "/v1/%61dmin/x", "other", 200, "b", "/v1/%61dmin/x"}, // normalized for matching, raw upstream
		{"GET", "/v1/items", "other.example.com", 404, "", ""},
		{"PUT", "/v1/items", "api.example.com", 404, "", ""},
		{"GET", "/static/app.js", "", 200, "c", "/static/app.js"},
		{"GET", "/nothing", "", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+tt.path, func(t *testing.T) {
			status, e, body := get(t, tt.method, gw.URL+tt.path, tt.host)
			if status != tt.status {
				t.Fatalf("status %d, want %d (body %q)", status, tt.status, body)
			}
			if status == 404 {
				if !strings.Contains(body, "no route") {
					t.Errorf("404 body %q, want a short explanation", body)
				}
				return
			}
			if e.Name != tt.upstream || e.URI != tt.uri {
				t.Errorf("reached upstream %q with URI %q, want %q with %q", e.Name, e.URI, tt.upstream, tt.uri)
			}
		})
	}
}

func limitsConfig(up string) string {
	return serverConfig(`
  max_header_bytes = "4KiB"
  max_body_bytes   = "1KiB"
  read_timeout     = "500ms"`, up)
}

// serverConfig is one pipeline to upstream up, under a server block with these attributes.
func serverConfig(attrs, up string) string {
	return fmt.Sprintf(`
server {%s
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, attrs, up)
}

func TestBodyTooLarge(t *testing.T) {
	gw := gatewaytest.Start(t, limitsConfig(echoUpstream(t, "u")))
	resp, err := http.Post(gw.URL+"/upload", "text/plain", strings.NewReader(strings.Repeat("x", 2048)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("status %d for a 2 KiB body over a 1 KiB limit, want 413", resp.StatusCode)
	}
	resp, err = http.Post(gw.URL+"/upload", "text/plain", strings.NewReader(strings.Repeat("x", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d for a body under the limit, want 200", resp.StatusCode)
	}
}

func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return line
}

func TestHeadersTooLarge(t *testing.T) {
	gw := gatewaytest.Start(t, limitsConfig(echoUpstream(t, "u")))
	req := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n"
	if line := rawRequest(t, gw.Addr, req); !strings.Contains(line, " 431 ") {
		t.Errorf("status line %q, want 431", line)
	}
}

func TestSlowHeadersDisconnected(t *testing.T) {
	gw := gatewaytest.Start(t, limitsConfig(echoUpstream(t, "u")))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n") // never finishes its headers
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn) // returns once the gateway closes the connection
	if err != nil {
		t.Fatalf("connection not closed by the gateway: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow client held the connection for %v, read_timeout is 500ms", d)
	}
}

func TestMalformedRequestIs400(t *testing.T) {
	gw := gatewaytest.Start(t, limitsConfig(echoUpstream(t, "u")))
	if line := rawRequest(t, gw.Addr, "GARBAGE\r\n\r\n"); !strings.Contains(line, " 400 ") {
		t.Errorf("status line %q, want 400", line)
	}
}

func TestTLSTermination(t *testing.T) {
	dir := t.TempDir()
	gatewaytest.WriteCert(t, filepath.Join(dir, "certs"), "gateway.pem", "gateway-key.pem")
	up := echoUpstream(t, "u")
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
server {
  tls {
    cert_file = "certs/gateway.pem"
    key_file  = "certs/gateway-key.pem"
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up), gatewaytest.Options{Dir: dir})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get(gw.URL + "/secure")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e upstream.Echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp.TLS == nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if got := e.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
		t.Errorf("X-Forwarded-Proto = %v, want [https]", got)
	}
	// Plain HTTP on the TLS port is refused, not served.
	if line := rawRequest(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); strings.Contains(line, "200") {
		t.Errorf("plain HTTP on the TLS listener answered %q", line)
	}
}

func TestConnectionLimits(t *testing.T) {
	up := echoUpstream(t, "u")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_connections  = 2
  max_conns_per_ip = 0
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", gw.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		return conn
	}
	// One keep-alive connection goes idle after a request; another is busy sending its
	// request head. Both slots are taken.
	idle := dial()
	_, _ = io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idleR := bufio.NewReader(idle)
	if line, _ := idleR.ReadString('\n'); !strings.Contains(line, " 200 ") {
		t.Fatalf("idle connection: %q", line)
	}
	busy := dial()
	_, _ = io.WriteString(busy, "GET /busy HTTP/1.1\r\n")
	waitFor(t, func() bool { return gw.Server.OpenConnections() == 2 && engine.IdleConns(gw.Server) == 1 })

	// A third connection is served: the idle one is closed to make room.
	if line := rawRequest(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.Contains(line, " 200 ") {
		t.Errorf("third connection got %q, want 200 (the idle connection evicted)", line)
	}
	if _, err := io.ReadAll(idleR); err != nil {
		t.Errorf("the idle connection was not closed: %v", err)
	}
	// The busy one is not evicted: it finishes its request.
	_, _ = io.WriteString(busy, "Host: x\r\n\r\n")
	if line, _ := bufio.NewReader(busy).ReadString('\n'); !strings.Contains(line, " 200 ") {
		t.Errorf("the busy connection was not served: %q", line)
	}

	// With both slots busy (neither idle), a new connection is refused with 503.
	waitFor(t, func() bool { return gw.Server.OpenConnections() <= 1 })
	busy2 := dial()
	_, _ = io.WriteString(busy2, "GET /busy HTTP/1.1\r\n")
	_, _ = io.WriteString(busy, "GET /busy HTTP/1.1\r\n")
	waitFor(t, func() bool { return gw.Server.OpenConnections() == 2 && engine.IdleConns(gw.Server) == 0 })
	if line := rawRequest(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.Contains(line, " 503 ") {
		t.Errorf("connection beyond max_connections with none idle got %q, want 503", line)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnectionsPerIP(t *testing.T) {
	up := echoUpstream(t, "u")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_conns_per_ip = 1
}
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
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, _ := bufio.NewReader(conn).ReadString('\n'); !strings.Contains(line, " 200 ") {
		t.Fatalf("first connection: %q", line)
	}
	if line := rawRequest(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); strings.Contains(line, " 200 ") {
		t.Errorf("a second connection from the same IP was served (%q), limit is 1", line)
	}
}

func TestSlowBodyDisconnected(t *testing.T) {
	gw := gatewaytest.Start(t, limitsConfig(echoUpstream(t, "u")))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// Headers promise 1000 bytes; 10 arrive, then nothing.
	_, _ = io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection not closed by the gateway: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow body held the connection for %v, read_timeout is 500ms", d)
	}
}

// TestIdleKeepAliveClosed checks idle_timeout on a keep-alive connection: closed once it has
// waited that long for its next request, not before.
func TestIdleKeepAliveClosed(t *testing.T) {
	gw := gatewaytest.Start(t, serverConfig(`
  read_timeout = "5s"
  idle_timeout = "400ms"`, echoUpstream(t, "u")))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	// The idle wait is timed from before the last request is sent: the gateway's idle_timeout
	// starts after it answers, but the client, descheduled on a loaded machine, may read that
	// answer well after; timed from then, the wait looked shorter than idle_timeout.
	var idle time.Time
	for i := 0; i < 2; i++ {
		idle = time.Now()
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by the gateway)", err)
	}
	if d := time.Since(idle); d < 350*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle keep-alive connection closed after %v, idle_timeout is 400ms", d)
	}
}
