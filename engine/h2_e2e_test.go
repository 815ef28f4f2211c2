package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// h2Gateway starts a gateway in front of an echo upstream with the given server attributes
// (tls: with a tls block and a fresh certificate).
func h2Gateway(t *testing.T, tlsOn bool, serverAttrs string) (*gatewaytest.Gateway, *upstream.Server) {
	t.Helper()
	up := upstream.New(upstream.Options{Name: "echo"})
	addr := gatewaytest.Upstream(t, up.Handle)
	dir := t.TempDir()
	tlsBlock := ""
	if tlsOn {
		gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
		tlsBlock = `tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }`
	}
	src := fmt.Sprintf(`
server {
  %s
  %s
}
upstream "echo" {
  target { address = %q }
}
pipeline "all" {
  match { path_prefix = "/" }
  balancer { upstream = upstream.echo }
}
`, serverAttrs, tlsBlock, addr)
	return gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir}), up
}

// h2cClient speaks HTTP/2 with prior knowledge over cleartext, and nothing else.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
}

// h2TLSClient speaks HTTP/2 over TLS (ALPN h2), and nothing else; certificates are not verified.
func h2TLSClient() *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
}

func decodeEcho(t *testing.T, resp *http.Response) upstream.Echo {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e upstream.Echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an echo (%d): %q", resp.StatusCode, body)
	}
	return e
}

func TestH2CPriorKnowledge(t *testing.T) {
	gw, up := h2Gateway(t, false, `protocols = ["http1", "h2c"]`)
	req, _ := http.NewRequest("POST", gw.URL+"/a/b?q=1", strings.NewReader("hello"))
	req.Header.Set("X-Test", "yes")
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("proto %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp.Header.Get("Connection") != "" || resp.Header.Get("Via") == "" {
		t.Errorf("response header %v: want Via, no Connection", resp.Header)
	}
	e := decodeEcho(t, resp)
	if e.Method != "POST" || e.URI != "/a/b?q=1" || e.BodyLen != 5 {
		t.Errorf("upstream saw %s %s with %d body bytes", e.Method, e.URI, e.BodyLen)
	}
	if got := e.Headers["X-Test"]; len(got) != 1 || got[0] != "yes" {
		t.Errorf("X-Test upstream: %q", got)
	}
	if got := e.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "http" {
		t.Errorf("X-Forwarded-Proto upstream: %q", got)
	}
	if up.Requests.Load() != 1 {
		t.Errorf("upstream requests %d, want 1", up.Requests.Load())
	}

	// The same port still serves HTTP/1.1.
	resp, err = http.Get(gw.URL + "/h1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 1 || resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.1 on the h2c port: %s %d", resp.Proto, resp.StatusCode)
	}
	if e := decodeEcho(t, resp); e.URI != "/h1" {
		t.Errorf("HTTP/1.1 upstream URI %q", e.URI)
	}
}

func TestH2OverTLS(t *testing.T) {
	gw, _ := h2Gateway(t, true, "") // default protocols with TLS: http1 and h2
	resp, err := h2TLSClient().Get(gw.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("%s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	e := decodeEcho(t, resp)
	if got := e.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
		t.Errorf("X-Forwarded-Proto upstream: %q (the filters must see the request as TLS)", got)
	}
	// An HTTP/1.1 client (ALPN http/1.1) on the same listener.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err = h1.Get(gw.URL + "/y")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 1 || resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.1 over TLS: %s %d", resp.Proto, resp.StatusCode)
	}
	resp.Body.Close()
}

// TestH2CDefaultsOff: without protocols, a cleartext server speaks HTTP/1.x only: the preface
// is an HTTP/1 request it refuses.
func TestH2CDefaultsOff(t *testing.T) {
	gw, up := h2Gateway(t, false, "")
	if _, err := h2cClient().Get(gw.URL + "/"); err == nil {
		t.Fatal("h2c request served by a server without h2c")
	}
	if up.Requests.Load() != 0 {
		t.Fatalf("upstream saw %d requests", up.Requests.Load())
	}
}

// TestH2CShortHTTP10: an HTTP/1.0 request shorter than the HTTP/2 preface is served on an h2c
// port (the classification decides at the first byte that differs, not after 24 bytes).
func TestH2CShortHTTP10(t *testing.T) {
	gw, _ := h2Gateway(t, false, `protocols = ["http1", "h2c"]`)
	for _, raw := range []string{"GET / HTTP/1.0\r\n\r\n", "PRI / HTTP/1.0\r\n\r\n"} {
		conn, err := net.Dial("tcp", gw.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		resp.Body.Close()
		conn.Close()
		// PRI is a method like any other to HTTP/1 (the pipeline takes any method).
		if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
			t.Errorf("%q: %s %d", raw, resp.Proto, resp.StatusCode)
		}
	}
}

// TestH2CUpgradeRefused: the Upgrade: h2c dance is not done; the request is served over HTTP/1.1
// with the Upgrade removed.
func TestH2CUpgradeRefused(t *testing.T) {
	gw, _ := h2Gateway(t, false, `protocols = ["http1", "h2c"]`)
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatal("switched to h2c")
	}
	e := decodeEcho(t, resp)
	if _, ok := e.Headers["Upgrade"]; ok {
		t.Errorf("Upgrade reached the upstream: %v", e.Headers)
	}
	if _, ok := e.Headers["Http2-Settings"]; ok {
		t.Errorf("HTTP2-Settings reached the upstream: %v", e.Headers)
	}
}

// h1Client speaks HTTP/1.1 (over TLS without verifying certificates).
func h1Client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
}

// TestH2Limits: max_header_bytes and max_body_bytes hold over HTTP/2 as over HTTP/1.1.
func TestH2Limits(t *testing.T) {
	gw, up := h2Gateway(t, false, `protocols = ["http1", "h2c"]
  max_header_bytes = "4KiB"
  max_body_bytes = "1KiB"`)
	c := h2cClient()
	do := func(req *http.Request) (int, upstream.Echo) {
		t.Helper()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("proto %s", resp.Proto)
		}
		var e upstream.Echo
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &e)
		return resp.StatusCode, e
	}

	before := up.Requests.Load()
	// Eight 1000-byte fields: 8 KiB over a 4 KiB limit. Sent raw: Go's own client refuses to
	// send a header list over the limit the server announced (once it has read it).
	raw := dialH2(t, gw.Addr)
	var fields []string
	for i := range 8 {
		fields = append(fields, fmt.Sprintf("x-big-%d", i), strings.Repeat("a", 1000))
	}
	if err := raw.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: raw.block("/big", fields...), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if status := raw.status(t, 1); status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8 KiB of header fields over a 4 KiB max_header_bytes: %d, want 431", status)
	}
	if n := up.Requests.Load() - before; n != 0 {
		t.Errorf("oversized headers reached the upstream %d times", n)
	}

	var req *http.Request
	before = up.Requests.Load()
	req, _ = http.NewRequest("POST", gw.URL+"/declared", strings.NewReader(strings.Repeat("b", 2000)))
	if status, _ := do(req); status != http.StatusRequestEntityTooLarge {
		t.Errorf("declared 2000-byte body over 1 KiB: %d, want 413", status)
	}

	// Unknown length (no content-length): a body stream cut at max_body_bytes.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(strings.Repeat("c", 5000)))
		_ = pw.Close()
	}()
	req, _ = http.NewRequest("POST", gw.URL+"/streamed", pr)
	if status, _ := do(req); status != http.StatusRequestEntityTooLarge {
		t.Errorf("undeclared 5000-byte body over 1 KiB: %d, want 413", status)
	}
	if n := up.Requests.Load() - before; n != 0 {
		t.Errorf("bodies over max_body_bytes reached the upstream %d times", n)
	}

	before = up.Requests.Load()
	req, _ = http.NewRequest("POST", gw.URL+"/fits", strings.NewReader(strings.Repeat("d", 1000)))
	status, e := do(req)
	if status != 200 || e.BodyLen != 1000 {
		t.Errorf("1000-byte body: %d, upstream got %d bytes", status, e.BodyLen)
	}
	pr, pw = io.Pipe()
	go func() {
		for i := 0; i < 10; i++ {
			_, _ = pw.Write([]byte(strings.Repeat("e", 90)))
		}
		_ = pw.Close()
	}()
	req, _ = http.NewRequest("POST", gw.URL+"/fits-streamed", pr)
	status, e = do(req)
	if status != 200 || e.BodyLen != 900 {
		t.Errorf("undeclared 900-byte body: %d, upstream got %d bytes", status, e.BodyLen)
	}
	if n := up.Requests.Load() - before; n != 2 {
		t.Errorf("upstream got %d requests for the two that fit", n)
	}
}

// TestH2ConnLimits: max_conns_per_ip and max_connections count HTTP/2 connections.
func TestH2ConnLimits(t *testing.T) {
	gw, _ := h2Gateway(t, false, `protocols = ["http1", "h2c"]
  max_conns_per_ip = 2`)
	var conns []*h2Raw
	for i := 0; i < 2; i++ {
		conns = append(conns, dialH2(t, gw.Addr))
	}
	waitFor(t, func() bool { return gw.Server.OpenConnections() == 2 })
	// A third connection from the same address is refused before it is classified.
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	got, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(got), "HTTP/1.1 429") {
		t.Fatalf("third connection got %q, want a 429 refusal", got)
	}
	// Closing an HTTP/2 connection gives its slot back.
	conns[0].conn.Close()
	waitFor(t, func() bool { return gw.Server.OpenConnections() == 1 })
	c3 := dialH2(t, gw.Addr)
	if status := c3.get(t, 1, "/after"); status != 200 {
		t.Fatalf("after a slot was freed: %d", status)
	}
}

// TestH2ClientResetAbortsUpstream: when the client resets its stream, the upstream exchange ends
// at once (the upstream sees its connection close) instead of running to its timeout.
func TestH2ClientResetAbortsUpstream(t *testing.T) {
	started := make(chan struct{}, 1)
	aborted := make(chan time.Duration, 1)
	upSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		started <- struct{}{}
		select {
		case <-r.Context().Done(): // net/http notices the gateway closing the connection
			aborted <- time.Since(begin)
		case <-time.After(20 * time.Second):
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = upSrv.Serve(ln) }()
	t.Cleanup(func() { _ = upSrv.Close() })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "slow" {
  target { address = %q }
  timeouts { request = "30s" }
}
pipeline "all" {
  balancer { upstream = upstream.slow }
}
`, ln.Addr().String()))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/slow", nil)
		resp, err := h2cClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	cancel() // RST_STREAM (CANCEL)
	select {
	case d := <-aborted:
		t.Logf("upstream exchange aborted %v after it started", d)
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream exchange went on after the client reset its stream")
	}
	<-errc
}

// TestH2OtelLogProtocol: otel_log records the protocol the client spoke.
func TestH2OtelLogProtocol(t *testing.T) {
	addr := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "echo"}).Handle)
	dir := t.TempDir()
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "echo" {
  target { address = %q }
}
pipeline "all" {
  filter "otel_log" {
    output = "access.log"
  }
  balancer { upstream = upstream.echo }
}
`, addr), gatewaytest.Options{Dir: dir})
	for _, c := range []*http.Client{h2cClient(), h1Client()} {
		resp, err := c.Get(gw.URL + "/logged")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var protos []string
	waitFor(t, func() bool {
		raw, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		protos = protos[:0]
		for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil {
				protos = append(protos, fmt.Sprint(rec["protocol"]))
			}
		}
		return len(protos) == 2
	})
	if protos[0] != "HTTP/2.0" || protos[1] != "HTTP/1.1" {
		t.Errorf("logged protocols %q, want HTTP/2.0 then HTTP/1.1", protos)
	}
}

// TestH2Reload: a reload while an HTTP/2 stream is in flight lets that stream finish on the old
// configuration; the next stream on the same connection uses the new one. Shutdown then ends the
// connection gracefully.
func TestH2Reload(t *testing.T) {
	release := make(chan struct{})
	slow := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/slow" {
			<-release
		}
		c.SetBodyString("old")
	})
	fresh := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("new") })
	const tmpl = `
server {
  protocols = ["http1", "h2c"]
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`
	gw := gatewaytest.Start(t, fmt.Sprintf(tmpl, slow))
	client := h2cClient() // one connection for every request
	body := func(path string) (string, error) {
		resp, err := client.Get(gw.URL + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := body("/warm"); err != nil || got != "old" {
		t.Fatalf("before the reload: %q, %v", got, err)
	}
	inflight := make(chan string, 1)
	go func() {
		got, err := body("/slow")
		if err != nil {
			got = err.Error()
		}
		inflight <- got
	}()
	waitFor(t, func() bool { return gw.Server.Gateway().InFlight() == 1 })
	drained := gw.Reload(t, fmt.Sprintf(tmpl, fresh))
	if got, err := body("/next"); err != nil || got != "new" {
		t.Fatalf("a new stream after the reload: %q, %v", got, err)
	}
	select {
	case <-drained:
		t.Fatal("the old configuration was closed with a stream in flight")
	default:
	}
	close(release)
	if got := <-inflight; got != "old" {
		t.Fatalf("the in-flight stream got %q, want the old configuration's answer", got)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("the old configuration was not drained")
	}
	gw.Stop(t)
	if _, err := body("/after-shutdown"); err == nil {
		t.Error("served after Shutdown")
	}
}

// TestH2GracefulShutdown: Shutdown lets an HTTP/2 stream in flight finish (the connection gets
// GOAWAY), then returns.
func TestH2GracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		<-release
		c.SetBodyString("finished")
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	client := h2cClient()
	got := make(chan string, 1)
	go func() {
		resp, err := client.Get(gw.URL + "/long")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	waitFor(t, func() bool { return gw.Server.Gateway().InFlight() == 1 })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- gw.Server.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned with a stream in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if b := <-got; b != "finished" {
		t.Fatalf("the in-flight stream got %q", b)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last stream")
	}
}

// TestTLSProtocolsChoice: a TLS server offers by ALPN only the protocols it serves.
func TestTLSProtocolsChoice(t *testing.T) {
	t.Run("http1 only", func(t *testing.T) {
		gw, _ := h2Gateway(t, true, `protocols = ["http1"]`)
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		c := &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get(gw.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 1 || resp.StatusCode != 200 {
			t.Fatalf("%s %d, want HTTP/1.1 200", resp.Proto, resp.StatusCode)
		}
	})
	t.Run("h2 only", func(t *testing.T) {
		gw, up := h2Gateway(t, true, `protocols = ["h2"]`)
		if resp, err := h1Client().Get(gw.URL + "/"); err == nil {
			resp.Body.Close()
			t.Fatalf("an HTTP/1.1 client was served (%s %d) by an h2-only server", resp.Proto, resp.StatusCode)
		}
		resp, err := h2TLSClient().Get(gw.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || up.Requests.Load() != 1 {
			t.Fatalf("%s, %d upstream requests", resp.Proto, up.Requests.Load())
		}
	})
}

// TestH2Admission: the admission rules apply to HTTP/2 requests as to HTTP/1.1 ones.
func TestH2Admission(t *testing.T) {
	gw, up := h2Gateway(t, false, `protocols = ["http1", "h2c"]`)
	c := dialH2(t, gw.Addr)
	id := uint32(1)
	for _, tc := range []struct {
		name   string
		path   string
		fields []string
		want   int
	}{
		{"escaped slash", "/a%2Fb", nil, 400},
		{"dot parameter", "/open/..;/admin", nil, 400},
		{"bad host", "/", []string{"host", "x@evil"}, 400},
		{"two authorizations", "/", []string{"authorization", "a", "authorization", "b"}, 400},
		{"CONNECT", "/", []string{":method", "CONNECT"}, 0}, // a CONNECT with :path is malformed: reset
		{"normal", "/ok/./x", nil, 200},
	} {
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(tc.path, tc.fields...), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if got := c.status(t, id); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
		id += 2
	}
	if n := up.Requests.Load(); n != 1 {
		t.Errorf("upstream got %d requests, want only the normal one", n)
	}
}

// TestH2StreamedResponse: a response larger than max_response_bytes streams to an HTTP/2
// client whole, and the upstream's trailers follow it.
func TestH2StreamedResponse(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/trailers" {
			_ = c.Response.Header.SetTrailer("X-Sum")
			c.Response.Header.Set("X-Sum", "abc")
		}
		c.SetBodyString(big)
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols          = ["http1", "h2c"]
  max_response_bytes = "16KiB"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	for _, path := range []string{"/length", "/trailers"} {
		resp, err := h2cClient().Get(gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != big {
			t.Fatalf("%s: %d of %d bytes (%v)", path, len(b), len(big), err)
		}
		if path == "/trailers" && resp.Trailer.Get("X-Sum") != "abc" {
			t.Errorf("trailers %v, want X-Sum: abc", resp.Trailer)
		}
	}
	if !strings.Contains(gw.Logs(), "streaming a response") {
		t.Error("the responses were not streamed (max_response_bytes)")
	}
}

// TestH2IdleEviction: at max_connections, an idle HTTP/2 connection is closed to make room, as
// an idle HTTP/1.1 one is; a busy one is not.
func TestH2IdleEviction(t *testing.T) {
	gw, _ := h2Gateway(t, false, `protocols = ["http1", "h2c"]
  max_connections = 2`)
	idle := dialH2(t, gw.Addr)
	busy := dialH2(t, gw.Addr)
	if status := busy.get(t, 1, "/warm"); status != 200 {
		t.Fatalf("warm-up: %d", status)
	}
	// busy keeps a stream open: its request body never ends.
	if err := busy.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: busy.block("/open", ":method", "POST"), EndStream: false, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return gw.Server.OpenConnections() == 2 })
	// The newest idle connection of the two is not "busy": the third connection evicts "idle"
	// (busy has a stream being served).
	time.Sleep(50 * time.Millisecond) // let busy's handler start
	third := dialH2(t, gw.Addr)
	if status := third.get(t, 1, "/third"); status != 200 {
		t.Fatalf("a new connection at max_connections: %d", status)
	}
	if _, _, closed := idle.drainUntilClosed(5 * time.Second); !closed {
		t.Error("the idle HTTP/2 connection was not closed to make room")
	}
	if _, _, closed := busy.drainUntilClosed(300 * time.Millisecond); closed {
		t.Error("the busy HTTP/2 connection was closed")
	}
}

// TestH2LargeUpload: request bodies over the 1 MiB read-whole limit, declared or not, reach the
// upstream intact.
func TestH2LargeUpload(t *testing.T) {
	gw, _ := h2Gateway(t, false, `protocols = ["http1", "h2c"]`)
	payload := bytes.Repeat([]byte("sluice-h2-upload-"), (5<<20)/17) // ~5 MiB
	sum := sha256.Sum256(payload)
	for _, declared := range []bool{true, false} {
		var body io.Reader = bytes.NewReader(payload)
		if !declared {
			body = io.MultiReader(body) // hides the length: no content-length
		}
		req, _ := http.NewRequest("PUT", gw.URL+"/upload", body)
		resp, err := h2cClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEcho(t, resp)
		if resp.StatusCode != 200 || e.BodyLen != len(payload) || e.BodySHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("declared %v: %d, upstream got %d bytes (sha256 %s)", declared, resp.StatusCode, e.BodyLen, e.BodySHA256)
		}
	}
}
