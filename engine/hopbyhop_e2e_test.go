package engine_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// rawUpstream is an HTTP/1.1 upstream that records each request head exactly as it arrived
// (names unnormalized) and answers 200 "ok", or what answer returns for the head.
type rawUpstream struct {
	addr   string
	mu     sync.Mutex
	heads  []string
	bodies []string
	answer func(head string) string // nil: 200 ok
}

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); u.serve(c) }()
		}
	}()
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		var head strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		h := head.String()
		body := ""
		if cl := headerValue(h, "Content-Length"); cl != "" {
			n, _ := strconv.Atoi(cl)
			b := make([]byte, n)
			if _, err := io.ReadFull(r, b); err != nil {
				return
			}
			body = string(b)
		}
		u.mu.Lock()
		u.heads = append(u.heads, h)
		u.bodies = append(u.bodies, body)
		answer := u.answer
		u.mu.Unlock()
		resp := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		if answer != nil {
			resp = answer(h)
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
		if strings.HasPrefix(resp, "HTTP/1.1 101") {
			_, _ = io.Copy(c, r) // a tunnel: echo
			return
		}
	}
}

// take returns the heads received since the last call.
func (u *rawUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	h := u.heads
	u.heads, u.bodies = nil, nil
	return h
}

// headerValue returns the value of the first field of head named name (case-insensitive, as
// spelled: '_' does not match '-'), or "".
func headerValue(head, name string) string {
	for _, line := range strings.Split(head, "\r\n")[1:] {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// hasField reports whether head has a field named name, spelled exactly so (case-insensitive).
func hasField(head, name string) bool {
	for _, line := range strings.Split(head, "\r\n")[1:] {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// exchange sends raw on a new connection and returns the first response.
func exchange(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp
}

// TestConnectionTokensRemovedOnArrival: headers a client names in Connection are removed when
// the request arrives, before any filter, so a filter's header and the ones the gateway relies
// on survive.
func TestConnectionTokensRemovedOnArrival(t *testing.T) {
	up := newRawUpstream(t)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    request_set = { "X-User-Id" = "alice" }
  }
  balancer { upstream = upstream.u }
}
`, up.addr))
	tests := []struct {
		name, raw string
		check     func(t *testing.T, head, body string)
	}{
		{"Host", "GET /h HTTP/1.1\r\nHost: client.example\r\nConnection: Host\r\n\r\n", func(t *testing.T, head, _ string) {
			if got := headerValue(head, "Host"); got != "client.example" {
				t.Errorf("Host = %q, want the client's client.example", got)
			}
		}},
		{"Authorization", "GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\nConnection: Authorization\r\n\r\n", func(t *testing.T, head, _ string) {
			if got := headerValue(head, "Authorization"); got != "Bearer abc" {
				t.Errorf("Authorization = %q, want it kept", got)
			}
		}},
		{"Content-Length", "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello", func(t *testing.T, head, body string) {
			if got := headerValue(head, "Content-Length"); got != "5" || body != "hello" {
				t.Errorf("Content-Length = %q, body %q, want 5 and hello", got, body)
			}
		}},
		{"filter-set header", "GET /f HTTP/1.1\r\nHost: x\r\nX-User-Id: mallory\r\nConnection: keep-alive, X-User-Id\r\n\r\n", func(t *testing.T, head, _ string) {
			if got := headerValue(head, "X-User-Id"); got != "alice" {
				t.Errorf("X-User-Id = %q, want the filter's alice", got)
			}
		}},
		{"other header still removed", "GET /o HTTP/1.1\r\nHost: x\r\nX-Hop: 1\r\nConnection: X-Hop\r\n\r\n", func(t *testing.T, head, _ string) {
			if hasField(head, "X-Hop") || hasField(head, "Connection") {
				t.Errorf("X-Hop or Connection forwarded:\n%s", head)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.take()
			if resp := exchange(t, gw.Addr, tt.raw); resp.StatusCode() != 200 {
				t.Fatalf("status %d", resp.StatusCode())
			}
			up.mu.Lock()
			heads, bodies := up.heads, up.bodies
			up.mu.Unlock()
			if len(heads) != 1 {
				t.Fatalf("upstream received %d requests", len(heads))
			}
			tt.check(t, heads[0], bodies[0])
		})
	}
}

// TestConnectionTokenCap: a Connection header with thousands of tokens is refused at once (each
// token cost a walk of the header list: 37 ms of CPU at 64 KiB of headers); a normal one passes.
func TestConnectionTokenCap(t *testing.T) {
	up := newRawUpstream(t)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_header_bytes = "64KiB"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up.addr))
	var toks, hdrs strings.Builder
	for i := range 4000 {
		if i > 0 {
			toks.WriteString(",")
		}
		fmt.Fprintf(&toks, "a%d", i)
	}
	for i := range 1500 {
		fmt.Fprintf(&hdrs, "b%d: v\r\n", i)
	}
	raw := "GET / HTTP/1.1\r\nHost: x\r\n" + hdrs.String() + "Connection: " + toks.String() + "\r\n\r\n"
	if len(raw) > 64<<10 {
		t.Fatalf("request of %d bytes does not fit the header limit", len(raw))
	}
	for range 5 {
		up.take()
		start := time.Now()
		resp := exchange(t, gw.Addr, raw)
		took := time.Since(start)
		if resp.StatusCode() != 400 {
			t.Fatalf("status %d, want 400 for %d Connection tokens", resp.StatusCode(), 4000)
		}
		if n := len(up.take()); n != 0 {
			t.Fatalf("upstream received %d requests", n)
		}
		t.Logf("answered in %v", took)
	}
	ok := "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, TE, X-A, X-B\r\nTE: trailers\r\nX-A: 1\r\nX-C: 3\r\n\r\n"
	if resp := exchange(t, gw.Addr, ok); resp.StatusCode() != 200 {
		t.Fatalf("status %d for 4 tokens", resp.StatusCode())
	}
	heads := up.take()
	if len(heads) != 1 || hasField(heads[0], "X-A") || hasField(heads[0], "TE") || headerValue(heads[0], "X-C") != "3" {
		t.Fatalf("upstream got %q", heads)
	}
}

// spoofable are the identity headers an untrusted client must not pass on.
var spoofable = []string{"Forwarded", "X-Real-IP", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-Client-IP", "True-Client-IP", "X-Forwarded-Port"}

// TestSpoofedIdentityHeaders sends each spoofable header from an untrusted and from a trusted
// peer, and underscore spellings of gateway- and filter-set headers from both.
func TestSpoofedIdentityHeaders(t *testing.T) {
	up := newRawUpstream(t)
	cfg := func(trusted string) string {
		return fmt.Sprintf(`
server {
  trusted_proxies = [%s]
  request_id = "X-Request-Id"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    request_set = { "X-User-Id" = "alice" }
  }
  balancer { upstream = upstream.u }
}
`, trusted, up.addr)
	}
	for _, peer := range []struct {
		name    string
		trusted string
	}{{"untrusted", `"10.9.9.9"`}, {"trusted", `"127.0.0.1"`}} {
		t.Run(peer.name, func(t *testing.T) {
			gw := gatewaytest.Start(t, cfg(peer.trusted))
			for _, name := range spoofable {
				up.take()
				raw := "GET / HTTP/1.1\r\nHost: x\r\n" + name + ": spoofed\r\n\r\n"
				if resp := exchange(t, gw.Addr, raw); resp.StatusCode() != 200 {
					t.Fatalf("%s: status %d", name, resp.StatusCode())
				}
				heads := up.take()
				if len(heads) != 1 {
					t.Fatalf("%s: upstream received %d requests", name, len(heads))
				}
				got := headerValue(heads[0], name)
				if peer.name == "untrusted" && got != "" {
					t.Errorf("%s from an untrusted peer reached the upstream: %q", name, got)
				}
				if peer.name == "trusted" && got != "spoofed" {
					t.Errorf("%s from a trusted proxy = %q, want it kept", name, got)
				}
			}
			// Underscore spellings of untrusted_headers go with them: CGI-style upstreams read
			// X_Original_URL as X-Original-URL.
			up.take()
			raw := "GET / HTTP/1.1\r\nHost: x\r\nX_Original_URL: /admin\r\nX_HTTP_Method_Override: DELETE\r\nTrue_Client_IP: 6.6.6.6\r\n\r\n"
			if resp := exchange(t, gw.Addr, raw); resp.StatusCode() != 200 {
				t.Fatalf("status %d", resp.StatusCode())
			}
			heads := up.take()
			if len(heads) != 1 {
				t.Fatalf("upstream received %d requests", len(heads))
			}
			for _, n := range []string{"X_Original_URL", "X_HTTP_Method_Override", "True_Client_IP"} {
				if kept := hasField(heads[0], n); kept != (peer.name == "trusted") {
					t.Errorf("%s from the %s peer: reached the upstream %v:\n%s", n, peer.name, kept, heads[0])
				}
			}
			// Underscore spellings of headers the gateway or a filter sets: removed for both.
			up.take()
			raw = "GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nX_User_Id: admin\r\nX_Request_Id: forged\r\nX_Forwarded_Proto: https\r\nX_Other: kept\r\n\r\n"
			if resp := exchange(t, gw.Addr, raw); resp.StatusCode() != 200 {
				t.Fatalf("status %d", resp.StatusCode())
			}
			heads = up.take()
			if len(heads) != 1 {
				t.Fatalf("upstream received %d requests", len(heads))
			}
			for _, n := range []string{"X_Forwarded_For", "X_User_Id", "X_Request_Id", "X_Forwarded_Proto"} {
				if hasField(heads[0], n) {
					t.Errorf("%s reached the upstream:\n%s", n, heads[0])
				}
			}
			if headerValue(heads[0], "X_Other") != "kept" || headerValue(heads[0], "X-User-Id") != "alice" {
				t.Errorf("X_Other or X-User-Id wrong:\n%s", heads[0])
			}
		})
	}
}

// TestForwardedHeaderRebuilt: with forwarded_header = true the upstream gets an RFC 7239
// Forwarded header; an untrusted client's own is replaced, a trusted proxy's extended.
func TestForwardedHeaderRebuilt(t *testing.T) {
	up := newRawUpstream(t)
	for _, tt := range []struct{ trusted, want string }{
		{`"10.9.9.9"`, `for=127.0.0.1;proto=http;host="app.example"`},
		{`"127.0.0.1"`, `for=192.0.2.60;proto=https, for=127.0.0.1;proto=http;host="app.example"`},
	} {
		gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  trusted_proxies = [%s]
  forwarded_header = true
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, tt.trusted, up.addr))
		up.take()
		raw := "GET / HTTP/1.1\r\nHost: app.example\r\nForwarded: for=192.0.2.60;proto=https\r\n\r\n"
		if resp := exchange(t, gw.Addr, raw); resp.StatusCode() != 200 {
			t.Fatalf("status %d", resp.StatusCode())
		}
		heads := up.take()
		if len(heads) != 1 {
			t.Fatalf("upstream received %d requests", len(heads))
		}
		if got := headerValue(heads[0], "Forwarded"); got != tt.want {
			t.Errorf("trusted_proxies = [%s]: Forwarded = %q, want %q", tt.trusted, got, tt.want)
		}
		if n := strings.Count(strings.ToLower(heads[0]), "\r\nforwarded:"); n != 1 {
			t.Errorf("%d Forwarded fields:\n%s", n, heads[0])
		}
		if headerValue(heads[0], "X-Forwarded-For") == "" {
			t.Errorf("X-Forwarded-For missing:\n%s", heads[0])
		}
		gw.Stop(t)
	}
}

// TestRequestTrailersDropped: a chunked request's trailer fields never reach the upstream as
// header fields (the request is forwarded with Content-Length, which has no trailer section).
func TestRequestTrailersDropped(t *testing.T) {
	up := newRawUpstream(t)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up.addr))
	for _, raw := range []string{
		"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Admin\r\n\r\n5\r\nhello\r\n0\r\nX-Admin: true\r\n\r\n",
		// Not announced.
		"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Admin: true\r\n\r\n",
		// A header-section field with the trailer's name stays, alone.
		"POST /t HTTP/1.1\r\nHost: x\r\nX-Admin: false\r\nTransfer-Encoding: chunked\r\nTrailer: X-Admin\r\n\r\n5\r\nhello\r\n0\r\nX-Admin: true\r\n\r\n",
	} {
		up.take()
		if resp := exchange(t, gw.Addr, raw); resp.StatusCode() != 200 {
			t.Fatalf("status %d", resp.StatusCode())
		}
		up.mu.Lock()
		heads, bodies := up.heads, up.bodies
		up.mu.Unlock()
		if len(heads) != 1 || bodies[0] != "hello" {
			t.Fatalf("upstream received %q %q", heads, bodies)
		}
		head := heads[0]
		wantAdmin := ""
		if strings.Contains(raw, "X-Admin: false") {
			wantAdmin = "false"
		}
		if got := headerValue(head, "X-Admin"); got != wantAdmin || strings.Count(head, "X-Admin") > 1 || hasField(head, "Trailer") {
			t.Errorf("trailer reached the upstream as a header (X-Admin = %q, want %q):\n%s", got, wantAdmin, head)
		}
	}
}

// TestUpgradeAllowList: only the protocols a pipeline lists in upgrades are switched to;
// another Upgrade (h2c, which would tunnel past every filter) is removed and the request
// forwarded as an ordinary one.
func TestUpgradeAllowList(t *testing.T) {
	up := newRawUpstream(t)
	up.answer = func(head string) string {
		if p := headerValue(head, "Upgrade"); p != "" {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + p + "\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	}
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  idle_timeout = "2s"
}
upstream "u" {
  target { address = %q }
}
pipeline "default" {
  match { path_prefix = "/ws/" }
  balancer { upstream = upstream.u }
}
pipeline "none" {
  match { path_prefix = "/none/" }
  upgrades = []
  balancer { upstream = upstream.u }
}
pipeline "h2c" {
  match { path_prefix = "/h2c/" }
  upgrades = ["websocket", "h2c"]
  balancer { upstream = upstream.u }
}
`, up.addr))
	h2c := "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
	ws := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	tests := []struct {
		path, hdrs string
		status     int
		upgrade    string // what the upstream sees in Upgrade
	}{
		{"/ws/", h2c, 200, ""},
		{"/ws/", ws, 101, "websocket"},
		{"/ws/", "Connection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n", 101, "websocket"},
		{"/none/", ws, 200, ""},
		{"/h2c/", h2c, 101, "h2c"},
	}
	for _, tt := range tests {
		up.take()
		resp := exchange(t, gw.Addr, "GET "+tt.path+" HTTP/1.1\r\nHost: x\r\n"+tt.hdrs)
		if resp.StatusCode() != tt.status {
			t.Errorf("%s %q: status %d, want %d", tt.path, tt.hdrs, resp.StatusCode(), tt.status)
			continue
		}
		heads := up.take()
		if len(heads) != 1 {
			t.Fatalf("upstream received %d requests", len(heads))
		}
		if got := headerValue(heads[0], "Upgrade"); got != tt.upgrade {
			t.Errorf("%s: upstream saw Upgrade %q, want %q", tt.path, got, tt.upgrade)
		}
		if tt.upgrade != "h2c" && hasField(heads[0], "HTTP2-Settings") {
			t.Errorf("%s: HTTP2-Settings forwarded:\n%s", tt.path, heads[0])
		}
		if tt.upgrade == "" && strings.Contains(strings.ToLower(headerValue(heads[0], "Connection")), "upgrade") {
			t.Errorf("%s: Connection: upgrade forwarded:\n%s", tt.path, heads[0])
		}
	}
}

// TestConformanceStatuses: 501 for an unknown transfer coding, 414 for an over-long
// request-target, 413 (without 100 Continue) for a declared body over max_body_bytes, and no
// invented Content-Type.
func TestConformanceStatuses(t *testing.T) {
	up := newRawUpstream(t)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_body_bytes = "1KiB"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up.addr))
	long := func(n int) string { return "/" + strings.Repeat("a", n) }
	for _, tt := range []struct {
		name, raw string
		status    int
	}{
		{"gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
		{"xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
		{"chunked with Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
		{"target over max_uri_bytes", "GET " + long(9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"request line over the header buffer", "GET " + long(20000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"header over the header buffer", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 20000) + "\r\n\r\n", 431},
		{"target at max_uri_bytes", "GET " + long(8191) + " HTTP/1.1\r\nHost: x\r\n\r\n", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := exchange(t, gw.Addr, tt.raw).StatusCode(); got != tt.status {
				t.Errorf("status %d, want %d", got, tt.status)
			}
		})
	}

	t.Run("Expect over max_body_bytes", func(t *testing.T) {
		conn, err := net.Dial("tcp", gw.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		// The body is not sent: a client waiting for 100 Continue gets the final answer.
		io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 413") {
			t.Fatalf("first response line %q (%v), want 413 before any 100 Continue", line, err)
		}
	})

	t.Run("no invented Content-Type", func(t *testing.T) {
		up.take()
		if got := exchange(t, gw.Addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").StatusCode(); got != 200 {
			t.Fatalf("status %d", got)
		}
		heads := up.take()
		if len(heads) != 1 || hasField(heads[0], "Content-Type") {
			t.Fatalf("upstream got %q, want no Content-Type", heads)
		}
	})
}

// TestErrorAnswerReachesSendingClient: a client still sending an oversized header or body gets
// the 431 or 413, not a connection reset, every time. The client sends at a steady pace (a
// client on a real network does) and, like most clients, gives up on a failed write: without a
// lingering close, the gateway's close with unread data resets the connection under it.
func TestErrorAnswerReachesSendingClient(t *testing.T) {
	up := newRawUpstream(t)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_body_bytes = "4KiB"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up.addr))
	bearer := "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + strings.Repeat("t", 64<<10) + "\r\n\r\n"
	body := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 262144\r\n\r\n" + strings.Repeat("b", 256<<10)
	for _, tt := range []struct {
		name, raw string
		first     int // bytes sent at once; then 4 KiB pieces
		status    string
	}{{"64 KiB bearer token", bearer, 20 << 10, "HTTP/1.1 431"}, {"256 KiB body", body, 8 << 10, "HTTP/1.1 413"}} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 50 {
				conn, err := net.Dial("tcp", gw.Addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				wrote := make(chan error, 1)
				go func() {
					rest := tt.raw
					n := tt.first
					for len(rest) > 0 {
						n = min(n, len(rest))
						if _, err := io.WriteString(conn, rest[:n]); err != nil {
							wrote <- err
							return
						}
						rest = rest[n:]
						n = 4 << 10
						time.Sleep(time.Millisecond) // the pace of the client's network
					}
					wrote <- nil
				}()
				werr := <-wrote
				got, err := io.ReadAll(conn)
				conn.Close()
				if werr != nil {
					t.Fatalf("try %d: sending the request failed: %v (the gateway reset the connection); read %q", i, werr, firstLine(got))
				}
				if !bytes.HasPrefix(got, []byte(tt.status)) {
					t.Fatalf("try %d: got %q (%v), want %s", i, firstLine(got), err, tt.status)
				}
			}
		})
	}
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// TestH2cNotTunnelledByDefault: with no upgrades attribute, an h2c upgrade to a backend that
// accepts it does not switch protocols: the request reaches the upstream as an ordinary one and
// the bytes after it are never tunnelled.
func TestH2cNotTunnelledByDefault(t *testing.T) {
	up := newRawUpstream(t)
	up.answer = func(head string) string {
		if headerValue(head, "Upgrade") == "h2c" {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	}
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up.addr))
	resp := exchange(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d, want 200 (no protocol switch)", resp.StatusCode())
	}
	heads := up.take()
	if len(heads) != 1 || hasField(heads[0], "Upgrade") || hasField(heads[0], "HTTP2-Settings") {
		t.Fatalf("upstream got %q", heads)
	}
}
