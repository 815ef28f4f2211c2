package engine_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
