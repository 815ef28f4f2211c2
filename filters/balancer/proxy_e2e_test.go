package balancer_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// config returns a gateway config with one upstream "u" of the given targets and body, and
// pipelines "/" (no strip) and "/v1/" (strip_prefix "/v1"). server is extra server attributes.
func config(server string, targets []string, upstreamBody string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server {\n  max_body_bytes = \"32MiB\"\n%s\n}\n", server)
	b.WriteString("upstream \"u\" {\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "  target {\n    address = %q\n  }\n", t)
	}
	b.WriteString(upstreamBody)
	b.WriteString("\n}\n")
	b.WriteString(`
pipeline "root" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.u
  }
}
pipeline "v1" {
  match {
    path_prefix = "/v1/"
  }
  strip_prefix = "/v1"
  balancer {
    upstream = upstream.u
  }
}
`)
	return b.String()
}

// rawRequest sends req (raw HTTP/1.1 text) to addr and returns the parsed response with its body.
func rawRequest(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	var forReq *http.Request
	if strings.HasPrefix(req, "HEAD ") {
		forReq = &http.Request{Method: "HEAD"}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), forReq)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// recorder is an upstream that records what it received.
type recorder struct {
	mu   sync.Mutex
	uris []string
	hdrs []http.Header
	n    int
}

func (r *recorder) handler(name string) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		h := http.Header{}
		for k, v := range c.Request.Header.All() {
			h.Add(string(k), string(v))
		}
		r.mu.Lock()
		r.uris = append(r.uris, string(c.Request.Header.RequestURI()))
		r.hdrs = append(r.hdrs, h)
		r.n++
		r.mu.Unlock()
		c.Response.Header.Set("X-Upstream", name)
		c.SetBodyString(name)
	}
}

func (r *recorder) last() (string, http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.uris) == 0 {
		return "", nil
	}
	return r.uris[len(r.uris)-1], r.hdrs[len(r.hdrs)-1]
}

func TestRoundRobinOverThreeTargets(t *testing.T) {
	var addrs []string
	for _, n := range []string{"a", "b", "c"} {
		addrs = append(addrs, gatewaytest.Upstream(t, (&recorder{}).handler(n)))
	}
	gw := gatewaytest.Start(t, config("", addrs, ""))
	cl := gatewaytest.Client()
	counts := map[string]int{}
	var seq []string
	for i := 0; i < 30; i++ {
		code, body, err := cl.Get(nil, gw.URL+"/x")
		if err != nil || code != 200 {
			t.Fatalf("GET: %d %v", code, err)
		}
		counts[string(body)]++
		seq = append(seq, string(body))
	}
	for _, n := range []string{"a", "b", "c"} {
		if counts[n] != 10 {
			t.Errorf("target %s got %d of 30 requests, want 10 (sequence %v)", n, counts[n], seq)
		}
	}
	// Strict rotation: no target twice in a row.
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			t.Fatalf("round robin sent two requests in a row to %s: %v", seq[i], seq)
		}
	}
}

func TestRawPathAndStripPrefix(t *testing.T) {
	rec := &recorder{}
	// escaped_slashes = "keep" forwards %2F as it came (the default refuses it).
	gw := gatewaytest.Start(t, config(`escaped_slashes = "keep"`, []string{gatewaytest.Upstream(t, rec.handler("a"))}, ""))
	cases := []struct{ sent, want string }{
		{"/v1/files/a%2Fb%26c?x=1%26y&z", "/files/a%2Fb%26c?x=1%26y&z"},
		{"/plain/a%2Fb%26c", "/plain/a%2Fb%26c"},
		{"/v1/", "/"},
		{"/v1/%7Euser", "/%7Euser"},
		{"/v10/x", "/v10/x"},
	}
	for _, tc := range cases {
		resp, _ := rawRequest(t, gw.Addr, "GET "+tc.sent+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", tc.sent, resp.StatusCode)
		}
		if got, _ := rec.last(); got != tc.want {
			t.Errorf("sent %s: upstream got %q, want %q", tc.sent, got, tc.want)
		}
	}
}

func TestHopByHopHeadersAndForwarding(t *testing.T) {
	rec := &recorder{}
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		rec.handler("a")(c)
		c.Response.Header.Set("Connection", "X-Resp-Secret")
		c.Response.Header.Set("X-Resp-Secret", "s3")
		c.Response.Header.Set("Keep-Alive", "timeout=5")
		c.Response.Header.Set("Proxy-Authenticate", "Basic")
		c.Response.Header.Set("X-Resp-Public", "ok")
	})
	gw := gatewaytest.Start(t, config("", []string{up}, ""))
	resp, _ := rawRequest(t, gw.Addr, "GET /h HTTP/1.1\r\nHost: example.test\r\n"+
		"Connection: close, X-Secret\r\nX-Secret: s1\r\nKeep-Alive: 300\r\nTE: trailers\r\n"+
		"Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\nX-Public: p\r\n"+
		"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Host: evil2\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, h := rec.last()
	for _, k := range []string{"X-Secret", "Keep-Alive", "Te", "Proxy-Authorization", "Proxy-Connection", "Upgrade", "Connection"} {
		if v := h.Get(k); v != "" {
			t.Errorf("upstream received hop-by-hop %s: %q", k, v)
		}
	}
	if ua := h.Get("User-Agent"); ua != "" {
		t.Errorf("the gateway added User-Agent %q", ua)
	}
	if h.Get("X-Public") != "p" {
		t.Errorf("X-Public not forwarded: %v", h)
	}
	// The socket peer is untrusted: its X-Forwarded-For claim is dropped, the chain restarts.
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", got)
	}
	// An untrusted client's X-Forwarded-Proto/-Host, repeated or not, never reach the upstream.
	if got := h.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want exactly [http]", got)
	}
	if got := h.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != "example.test" {
		t.Errorf("X-Forwarded-Host = %q, want exactly [example.test]", got)
	}
	if got := h.Get("Via"); got != "1.1 sluice" {
		t.Errorf("Via = %q", got)
	}
	if got := h.Get("Host"); got != "example.test" {
		t.Errorf("Host = %q, want the client's", got)
	}
	for _, k := range []string{"X-Resp-Secret", "Keep-Alive", "Proxy-Authenticate"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("client received hop-by-hop %s: %q", k, v)
		}
	}
	if resp.Header.Get("X-Resp-Public") != "ok" || resp.Header.Get("X-Upstream") != "a" {
		t.Errorf("end-to-end response headers lost: %v", resp.Header)
	}
	if got := resp.Header.Get("Via"); got != "1.1 sluice" {
		t.Errorf("response Via = %q", got)
	}
}

func TestTrustedProxyChain(t *testing.T) {
	rec := &recorder{}
	up := gatewaytest.Upstream(t, rec.handler("a"))
	gw := gatewaytest.Start(t, config(`  trusted_proxies = ["127.0.0.1"]`, []string{up}, ""))
	resp, _ := rawRequest(t, gw.Addr, "GET /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"+
		"X-Forwarded-For: 9.9.9.9, 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, h := rec.last()
	// 1.2.3.4 is the client (first untrusted hop from the right); 9.9.9.9 is its own claim.
	if got := h.Get("X-Forwarded-For"); got != "1.2.3.4, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want \"1.2.3.4, 127.0.0.1\"", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto from a trusted proxy = %q, want kept", got)
	}
}

func TestLargeBodiesBothWays(t *testing.T) {
	const size = 16 << 20
	payload := make([]byte, size)
	_, _ = rand.Read(payload)
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		switch string(c.Path()) {
		case "/echo":
			c.SetBody(c.Request.Body()) // request body back, byte for byte
		case "/chunked":
			c.SetBodyStream(bytes.NewReader(payload), -1)
		default:
			c.SetBody(payload)
		}
	})
	for _, tc := range []struct{ name, server string }{
		{"held", ""},
		{"streamed", `  max_response_bytes = "1MiB"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := gatewaytest.Start(t, config(tc.server, []string{up}, ""))
			cl := gatewaytest.Client()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(gw.URL + "/echo")
			req.Header.SetMethod("POST")
			req.SetBody(payload)
			if err := cl.DoTimeout(req, resp, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != 200 || !bytes.Equal(resp.Body(), payload) {
				t.Fatalf("16 MiB echo: status %d, %d bytes back, equal=%v", resp.StatusCode(), len(resp.Body()), bytes.Equal(resp.Body(), payload))
			}
			for _, path := range []string{"/down", "/chunked"} {
				code, body, err := cl.GetTimeout(nil, gw.URL+path, 20*time.Second)
				if err != nil || code != 200 || !bytes.Equal(body, payload) {
					t.Fatalf("16 MiB GET %s: %d, %d bytes, err %v", path, code, len(body), err)
				}
			}
		})
	}
}

func TestErrorStatuses(t *testing.T) {
	// A port with nothing listening: connect refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	slow := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		time.Sleep(2 * time.Second)
		c.SetBodyString("late")
	})
	t.Run("refused is 502", func(t *testing.T) {
		gw := gatewaytest.Start(t, config("", []string{dead}, ""))
		resp, body := rawRequest(t, gw.Addr, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 502 || strings.Contains(string(body), "refused") || len(body) > 64 {
			t.Errorf("got %d %q, want 502 with a short standard body", resp.StatusCode, body)
		}
	})
	t.Run("timeout is 504", func(t *testing.T) {
		gw := gatewaytest.Start(t, config("", []string{slow}, `timeouts {
    request = "200ms"
  }`))
		start := time.Now()
		resp, body := rawRequest(t, gw.Addr, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 504 || strings.Contains(string(body), "timeout") || len(body) > 64 {
			t.Errorf("got %d %q, want 504 with a short standard body", resp.StatusCode, body)
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("504 took %v, want about the 200ms request timeout", el)
		}
	})
	t.Run("no healthy target is 503", func(t *testing.T) {
		gw := gatewaytest.Start(t, config("", []string{dead}, `health_check {
    interval = "50ms"
    timeout = "50ms"
    unhealthy_threshold = 1
  }`))
		deadline := time.Now().Add(3 * time.Second)
		for {
			resp, body := rawRequest(t, gw.Addr, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			if resp.StatusCode == 503 {
				if len(body) > 64 {
					t.Errorf("503 body %q", body)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d after 3s, want 503 once the health check failed", resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestMaxConnectionsPerTarget(t *testing.T) {
	release := make(chan struct{})
	var inside sync.WaitGroup
	inside.Add(1)
	var once sync.Once
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		once.Do(inside.Done)
		<-release
		c.SetBodyString("ok")
	})
	gw := gatewaytest.Start(t, config("", []string{up}, "max_connections_per_target = 1"))
	first := make(chan int, 1)
	go func() {
		resp, _ := rawRequest(t, gw.Addr, "GET /slow HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		first <- resp.StatusCode
	}()
	inside.Wait()
	// The only slot is taken: the second request waits briefly, then gets 503.
	start := time.Now()
	resp, _ := rawRequest(t, gw.Addr, "GET /second HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 503 {
		t.Errorf("second request: %d, want 503 with max_connections_per_target = 1", resp.StatusCode)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("the queued request waited %v", el)
	}
	close(release)
	if code := <-first; code != 200 {
		t.Errorf("first request: %d", code)
	}
}

// TestAmbiguousFramingIsNotSmuggled sends a request with both Content-Length and
// Transfer-Encoding: the upstream must see at most one request, with one framing.
func TestAmbiguousFramingIsNotSmuggled(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %s te=%q cl=%d body=%q", c.Method(), c.RequestURI(),
			c.Request.Header.Peek("Transfer-Encoding"), c.Request.Header.ContentLength(), c.Request.Body()))
		mu.Unlock()
	})
	gw := gatewaytest.Start(t, config("", []string{up}, ""))
	smuggled := "GET /admin HTTP/1.1\r\nHost: h\r\n\r\n"
	body := fmt.Sprintf("0\r\n\r\n%s", smuggled)
	resp, _ := rawRequest(t, gw.Addr, fmt.Sprintf("POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%s", len(body), body))
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, g := range got {
		if strings.Contains(g, "/admin") {
			t.Fatalf("the upstream saw a smuggled request: %v", got)
		}
	}
	if len(got) > 1 {
		t.Fatalf("the upstream saw %d requests for one: %v", len(got), got)
	}
	if len(got) == 1 && strings.Contains(got[0], `te="chunked"`) {
		t.Errorf("forwarded with Transfer-Encoding, want one Content-Length framing: %s", got[0])
	}
	t.Logf("client got %d; upstream saw %v", resp.StatusCode, got)
}

func TestHeadKeepsContentLength(t *testing.T) {
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("0123456789") })
	gw := gatewaytest.Start(t, config("", []string{up}, ""))
	resp, body := rawRequest(t, gw.Addr, "HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("HEAD: %d with %d body bytes", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Content-Length"); got != "10" {
		t.Errorf("HEAD Content-Length = %q, want the upstream's 10", got)
	}
}

func TestKeepAlivePoolIsReused(t *testing.T) {
	var mu sync.Mutex
	remotes := map[string]int{}
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		mu.Lock()
		remotes[c.RemoteAddr().String()]++
		mu.Unlock()
		c.SetBodyString("ok")
	})
	gw := gatewaytest.Start(t, config("", []string{up}, ""))
	for i := 0; i < 20; i++ {
		// A new client connection each time (Connection: close): the upstream side is pooled.
		if resp, _ := rawRequest(t, gw.Addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(remotes) != 1 {
		t.Errorf("20 sequential requests used %d upstream connections, want 1 kept alive: %v", len(remotes), remotes)
	}
}

func TestChunkedUploadIsForwardedWithLength(t *testing.T) {
	var got string
	var cl int
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		got = string(c.Request.Body())
		cl = c.Request.Header.ContentLength()
	})
	gw := gatewaytest.Start(t, config("", []string{up}, ""))
	resp, _ := rawRequest(t, gw.Addr, "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	if resp.StatusCode != 200 || got != "hello world" || cl != 11 {
		t.Errorf("status %d; upstream got %q with Content-Length %d, want \"hello world\" and 11", resp.StatusCode, got, cl)
	}
}

// TestClientConnectionCloseKept checks that forwarding the request in place does not lose what the
// client asked for its own connection: with Connection: close the gateway closes it after the
// response (while the upstream connection stays keep-alive), without it the connection serves a
// second request.
func TestClientConnectionCloseKept(t *testing.T) {
	rec := &recorder{}
	up := gatewaytest.Upstream(t, rec.handler("a"))
	gw := gatewaytest.Start(t, config("", []string{up}, ""))
	for _, close := range []bool{true, false} {
		conn, err := net.DialTimeout("tcp", gw.Addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
		if close {
			req = "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
		}
		br := bufio.NewReader(conn)
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if _, h := rec.last(); h.Get("Connection") != "" {
			t.Errorf("close=%v: upstream got Connection %q", close, h.Get("Connection"))
		}
		if close {
			if n, err := br.ReadByte(); err != io.EOF {
				t.Errorf("Connection: close: connection still open after the response (%v, %v)", n, err)
			}
		} else {
			if _, err := io.WriteString(conn, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
				t.Errorf("second request on a keep-alive connection: %v %v", resp, err)
			}
		}
		conn.Close()
	}
}

// TestInterimResponsesSkipped checks that 1xx responses before the final one (103 Early Hints,
// 100 Continue) are read past on the upstream connection, and that the connection is reused for
// the next request.
func TestInterimResponsesSkipped(t *testing.T) {
	addr, conns := rawUpstream(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			_, _ = io.WriteString(conn, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 100 Continue\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	gw := gatewaytest.Start(t, config("", []string{addr}, ""))
	for i := 0; i < 3; i++ {
		resp, body := rawRequest(t, gw.Addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: %d %q, want 200 ok", i, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 3 sequential requests, want 1 (kept alive)", n)
	}
}

// TestCloseDelimitedResponse checks a response whose body ends when the upstream closes the
// connection (HTTP/1.0, no Content-Length): the client gets the whole body, and the next request
// goes out on a new upstream connection.
func TestCloseDelimitedResponse(t *testing.T) {
	addr, conns := rawUpstream(t, func(conn net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"+strings.Repeat("z", 3000))
	})
	gw := gatewaytest.Start(t, config("", []string{addr}, ""))
	for i := 0; i < 2; i++ {
		resp, body := rawRequest(t, gw.Addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != strings.Repeat("z", 3000) {
			t.Fatalf("request %d: %d, %d bytes, want 200 with 3000", i, resp.StatusCode, len(body))
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d upstream connections for 2 requests, want 2 (a close-delimited body ends its connection)", n)
	}
}

// rawUpstream serves each accepted connection with serve (which writes raw HTTP), closing it
// after, and counts the connections.
func rawUpstream(t *testing.T, serve func(net.Conn)) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := new(atomic.Int32)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// TestUpstreamClosedIdleConnection: the upstream closes each keep-alive connection right after
// answering, and the gateway's pool still holds it. The next request, written to that connection
// by the read that waits for its answer (upstreamConn.Read), must learn of the close at once
// (the upstream's kernel answers with a reset), not at the request timeout, and go out again on
// a new connection: with the default retry policy and a single target, the client still gets 200.
// Before closedWhileIdle, every other request here was a 502.
func TestUpstreamClosedIdleConnection(t *testing.T) {
	addr, conns := rawUpstream(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		// Keep-alive was not refused, yet the connection closes right after (an idle timeout
		// shorter than the gateway's pool keeps).
	})
	gw := gatewaytest.Start(t, config("", []string{addr}, `
  timeouts {
    request = "10s"
  }`))
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(50 * time.Millisecond) // the close reaches the gateway's pooled connection
		}
		start := time.Now()
		resp, body := rawRequest(t, gw.Addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: %d %q, want 200 ok", i, resp.StatusCode, body)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("request %d on a connection the upstream had closed took %v", i, d)
		}
	}
	if n := conns.Load(); n < 3 {
		t.Errorf("%d upstream connections for 3 requests to an upstream closing each, want 3", n)
	}
}

// TestResponseViaAppended: the gateway's Via goes after an upstream's own (a proxy behind it),
// never replacing it; without one it is the only Via (finishResponse's two paths).
func TestResponseViaAppended(t *testing.T) {
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/via" {
			c.Response.Header.Add("Via", "1.0 inner")
		}
		c.SetBodyString("ok")
	})
	gw := gatewaytest.Start(t, config("", []string{up}, ""))
	for path, want := range map[string][]string{"/via": {"1.0 inner", "1.1 sluice"}, "/": {"1.1 sluice"}} {
		resp, _ := rawRequest(t, gw.Addr, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		if got := resp.Header.Values("Via"); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: response Via = %q, want %q", path, got, want)
		}
	}
}
