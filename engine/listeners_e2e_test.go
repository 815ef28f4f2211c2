package engine_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// sniGateway serves one TLS listener with three certificates: the default (first), an exact
// name and a wildcard.
func sniGateway(t *testing.T, ca *gatewaytest.CA, extra string) (*gatewaytest.Gateway, string) {
	t.Helper()
	dir := t.TempDir()
	ca.Issue(t, dir, "default.pem", "default-key.pem", "default.test")
	ca.Issue(t, dir, "api.pem", "api-key.pem", "api.example.test")
	ca.Issue(t, dir, "wild.pem", "wild-key.pem", "*.example.test")
	up := echoUpstream(t, "u")
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
listener "public" {
  address = "127.0.0.1:0"
  tls {
    certificate {
      cert_file = "default.pem"
      key_file  = "default-key.pem"
    }
    certificate {
      cert_file = "api.pem"
      key_file  = "api-key.pem"
    }
    certificate {
      cert_file = "wild.pem"
      key_file  = "wild-key.pem"
    }
    %s
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, extra, up), gatewaytest.Options{Dir: dir})
	return gw, dir
}

// served returns the first DNS name of the certificate the gateway presents for serverName.
func served(t *testing.T, addr, serverName string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", serverName, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames[0]
}

func TestSNISelection(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	gw, _ := sniGateway(t, ca, "")
	for _, tc := range []struct{ sni, want string }{
		{"api.example.test", "api.example.test"},  // exact beats the wildcard
		{"API.Example.Test.", "api.example.test"}, // names are case-insensitive; a trailing dot is the same name
		{"www.example.test", "*.example.test"},    // wildcard
		{"a.b.example.test", "default.test"},      // a wildcard covers one label only
		{"example.test", "default.test"},          // nor the bare parent
		{"unknown.other", "default.test"},         // unknown: the default
		{"", "default.test"},                      // no SNI: the default
		{"default.test", "default.test"},
	} {
		if got := served(t, gw.Addr, tc.sni); got != tc.want {
			t.Errorf("SNI %q: served %q, want %q", tc.sni, got, tc.want)
		}
	}
	// A verifying client gets through with the name it asked for, and the request is served.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "www.example.test"}}}
	resp, err := client.Get(gw.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// TestListenersRouting: two listeners with different protocols (TLS and cleartext); a pipeline
// restricted to one listener is not reachable through the other, and each listener obeys its
// own connection limit.
func TestListenersRouting(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	ca.Issue(t, dir, "c.pem", "k.pem", "localhost")
	pub, internal := echoUpstream(t, "public"), echoUpstream(t, "internal")
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
listener "public" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "c.pem"
    key_file  = "k.pem"
  }
}
listener "internal" {
  address          = "127.0.0.1:0"
  protocols        = ["http1", "h2c"]
  max_conns_per_ip = 2
}
upstream "pub" {
  target { address = %q }
}
upstream "int" {
  target { address = %q }
}
pipeline "internal-only" {
  match {
    path_prefix = "/ops/"
    listeners   = ["internal"]
  }
  balancer { upstream = upstream.int }
}
pipeline "everyone" {
  balancer { upstream = upstream.pub }
}
`, pub, internal), gatewaytest.Options{Dir: dir})
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}, ForceAttemptHTTP2: true}}
	var h2cProtos http.Protocols
	h2cProtos.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &h2cProtos}}
	upstreamOf := func(c *http.Client, url string) string {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if c != http.DefaultClient && resp.ProtoMajor != 2 {
			t.Errorf("%s: served over %s, want HTTP/2", url, resp.Proto)
		}
		var e upstream.Echo
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("%s: %d, not an echo: %v", url, resp.StatusCode, err)
		}
		return e.Name
	}
	if got := upstreamOf(https, "https://"+gw.Addrs["public"]+"/ops/x"); got != "public" {
		t.Errorf("/ops/ through the public listener reached %q, want the public pipeline", got)
	}
	if got := upstreamOf(http.DefaultClient, "http://"+gw.Addrs["internal"]+"/ops/x"); got != "internal" {
		t.Errorf("/ops/ through the internal listener reached %q", got)
	}
	if got := upstreamOf(http.DefaultClient, "http://"+gw.Addrs["internal"]+"/y"); got != "public" {
		t.Errorf("/y through the internal listener reached %q", got)
	}
	// The same over HTTP/2: h2 (ALPN) on the TLS listener, h2c on the cleartext one.
	if got := upstreamOf(https, "https://"+gw.Addrs["public"]+"/ops/h2"); got != "public" {
		t.Errorf("/ops/ over h2 through the public listener reached %q", got)
	}
	if got := upstreamOf(h2c, "http://"+gw.Addrs["internal"]+"/ops/h2c"); got != "internal" {
		t.Errorf("/ops/ over h2c through the internal listener reached %q", got)
	}
	h2c.CloseIdleConnections()
	// Cleartext on the TLS listener is not served; TLS on the cleartext one neither.
	if line := rawRequest(t, gw.Addrs["public"], "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); strings.Contains(line, "200") {
		t.Errorf("plain HTTP on the TLS listener answered %q", line)
	}
	if _, err := tls.Dial("tcp", gw.Addrs["internal"], &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("a TLS handshake succeeded on the cleartext listener")
	}
	// The internal listener's own max_conns_per_ip = 2: a third connection is refused.
	http.DefaultClient.CloseIdleConnections()
	https.CloseIdleConnections()
	waitFor(t, func() bool { return engine.MaxConnsFromOneAddr(gw.Server) == 0 })
	conns := make([]net.Conn, 2)
	for i := range conns {
		c, err := net.Dial("tcp", gw.Addrs["internal"])
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		defer c.Close()
	}
	waitFor(t, func() bool { return engine.MaxConnsFromOneAddr(gw.Server) == 2 })
	if line := rawRequest(t, gw.Addrs["internal"], "GET /y HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(line, "HTTP/1.1 429 ") {
		t.Errorf("a third connection from one address got %q, want a 429 refusal", line)
	}
	// Closing one of the two gives its slot back: the next connection is served.
	conns[0].Close()
	waitFor(t, func() bool { return engine.MaxConnsFromOneAddr(gw.Server) == 1 })
	if line := rawRequest(t, gw.Addrs["internal"], "GET /y HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(line, "HTTP/1.1 200 ") {
		t.Errorf("a connection after a slot was freed got %q, want 200", line)
	}
	// The public listener keeps the server's limit (256): the internal one's does not apply.
	defer https.CloseIdleConnections()
	if got := upstreamOf(https, "https://"+gw.Addrs["public"]+"/z"); got != "public" {
		t.Errorf("public listener: %q", got)
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	ca.Issue(t, dir, "c.pem", "k.pem", "example.test")
	up := echoUpstream(t, "u")
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
listener "http" {
  address           = "127.0.0.1:0"
  redirect_to_https = true
}
listener "https" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "c.pem"
    key_file  = "k.pem"
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up), gatewaytest.Options{Dir: dir})
	_, httpsPort, _ := net.SplitHostPort(gw.Addrs["https"])
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct{ method, target, host, want string }{
		{"GET", "/a/b?c=1&d=%2F", "example.test", "https://example.test:" + httpsPort + "/a/b?c=1&d=%2F"},
		{"POST", "/form", "Example.Test:8080", "https://example.test:" + httpsPort + "/form"},
		{"GET", "/", "[::1]:80", "https://[::1]:" + httpsPort + "/"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+gw.Addrs["http"]+tc.target, strings.NewReader(""))
		req.Host = tc.host
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != tc.want {
			t.Errorf("%s %s (Host %s): %d Location %q, want 308 %q", tc.method, tc.target, tc.host, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
	}
	// ACME HTTP-01 challenges are not redirected: without an ACME provider they are routed.
	resp, err := noFollow.Get("http://" + gw.Addrs["http"] + "/.well-known/acme-challenge/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("challenge path: %d, want 200 from the pipeline", resp.StatusCode)
	}
	// Following the redirect reaches the pipeline over TLS.
	follow := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, strings.Replace(addr, "example.test", "127.0.0.1", 1))
		},
	}}
	req, _ := http.NewRequest("GET", "http://"+gw.Addrs["http"]+"/followed", nil)
	req.Host = "example.test"
	resp, err = follow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("after the redirect: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
}

// TestCertificateReplacedUnderLoad: the certificate files are replaced while clients keep
// handshaking; the new certificate is served without a restart and no handshake fails.
func TestCertificateReplacedUnderLoad(t *testing.T) {
	defer engine.SetCertPoll(20 * time.Millisecond)()
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	first := ca.Issue(t, dir, "c.pem", "k.pem", "localhost")
	up := echoUpstream(t, "u")
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
listener "tls" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "c.pem"
    key_file  = "k.pem"
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up), gatewaytest.Options{Dir: dir})
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	var handshakes, failed atomic.Int64
	var lastErr atomic.Value
	seen := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := tls.Dial("tcp", gw.Addr, conf)
				handshakes.Add(1)
				if err != nil {
					failed.Add(1)
					lastErr.Store(err)
					continue
				}
				seen.Store(c.ConnectionState().PeerCertificates[0].SerialNumber.String(), true)
				_ = c.Close()
			}
		}()
	}
	waitFor(t, func() bool { return handshakes.Load() > 50 })
	// Replace the pair several times; each file is renamed into place, the two not together,
	// so the watcher also meets a certificate whose key has not arrived yet.
	var latest string
	for range 5 {
		c := ca.Issue(t, dir, "c.pem", "k.pem", "localhost")
		latest = c.SerialNumber.String()
		time.Sleep(60 * time.Millisecond)
	}
	waitFor(t, func() bool { _, ok := seen.Load(latest); return ok })
	waitFor(t, func() bool { return handshakes.Load() >= 200 }) // N: enough for the count to mean something
	close(stop)
	wg.Wait()
	if _, ok := seen.Load(first.SerialNumber.String()); !ok {
		t.Error("the first certificate was never served")
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d handshakes failed, last: %v", n, handshakes.Load(), lastErr.Load())
	}
	t.Logf("%d handshakes, 0 failed", handshakes.Load())
}

// TestCertificateReloadedOnSwap: a reload (Server.Swap of a new build) serves the certificate
// files as they are now, also when the poll has not seen them yet.
func TestCertificateReloadedOnSwap(t *testing.T) {
	defer engine.SetCertPoll(time.Hour)()
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	ca.Issue(t, dir, "c.pem", "k.pem", "localhost")
	up := echoUpstream(t, "u")
	src := fmt.Sprintf(`
server {
  listen = "127.0.0.1:0"
  tls {
    cert_file = "c.pem"
    key_file  = "k.pem"
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up)
	gw := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir})
	next := ca.Issue(t, dir, "c.pem", "k.pem", "localhost")
	<-gw.Reload(t, src)
	c, err := tls.Dial("tcp", gw.Addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(next.SerialNumber) != 0 {
		t.Errorf("after the reload the old certificate is served")
	}
}

func TestTLSVersionsAndCiphers(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	gw, _ := sniGateway(t, ca, "")
	dial := func(c *tls.Config) (tls.ConnectionState, error) {
		c.RootCAs, c.ServerName = ca.Pool(), "api.example.test"
		conn, err := tls.Dial("tcp", gw.Addr, c)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}
	refused := []struct {
		name string
		conf *tls.Config
	}{
		{"TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}},
		{"RSA key exchange", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA}}},
		{"CBC", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}},
		{"3DES", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}},
	}
	for _, tc := range refused {
		if st, err := dial(tc.conf); err == nil {
			t.Errorf("%s: accepted (version %x, suite %s)", tc.name, st.Version, tls.CipherSuiteName(st.CipherSuite))
		}
	}
	st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil || st.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2 with defaults: %v, version %x", err, st.Version)
	}
	if !slicesContains(engine.DefaultCipherSuites, st.CipherSuite) {
		t.Errorf("TLS 1.2 negotiated %s, not an intermediate suite", tls.CipherSuiteName(st.CipherSuite))
	}
	if st.CurveID != tls.X25519 {
		t.Errorf("TLS 1.2 key exchange %v, want X25519", st.CurveID)
	}
	st, err = dial(&tls.Config{})
	if err != nil || st.Version != tls.VersionTLS13 {
		t.Fatalf("TLS 1.3: %v, version %x", err, st.Version)
	}
	if st.CurveID != tls.X25519MLKEM768 {
		t.Errorf("TLS 1.3 key exchange %v, want the hybrid X25519MLKEM768", st.CurveID)
	}
	if st, err = dial(&tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}); err != nil || st.CurveID != tls.X25519 {
		t.Errorf("TLS 1.3 on X25519 only: %v, %v", err, st.CurveID)
	}
	if st, err = dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305}}); err != nil || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305 {
		t.Errorf("TLS 1.2 ChaCha20: %v", err)
	}
}

func slicesContains(list []uint16, v uint16) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestTLSParametersPerListener: min_version, ciphers and curves set on the listener.
func TestTLSParametersPerListener(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	t.Run("min_version 1.3", func(t *testing.T) {
		gw, _ := sniGateway(t, ca, `min_version = "1.3"`)
		if _, err := tls.Dial("tcp", gw.Addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "api.example.test", MaxVersion: tls.VersionTLS12}); err == nil {
			t.Error("a TLS 1.2 client was accepted")
		}
		c, err := tls.Dial("tcp", gw.Addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "api.example.test"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("ciphers and curves", func(t *testing.T) {
		gw, _ := sniGateway(t, ca, `ciphers = ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
    curves  = ["P-256"]`)
		conf := func(c *tls.Config) *tls.Config { c.RootCAs, c.ServerName = ca.Pool(), "api.example.test"; return c }
		if _, err := tls.Dial("tcp", gw.Addr, conf(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})); err == nil {
			t.Error("a suite outside ciphers was accepted")
		}
		if _, err := tls.Dial("tcp", gw.Addr, conf(&tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}})); err == nil {
			t.Error("a curve outside curves was accepted")
		}
		c, err := tls.Dial("tcp", gw.Addr, conf(&tls.Config{MaxVersion: tls.VersionTLS12}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if st := c.ConnectionState(); st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 || st.CurveID != tls.CurveP256 {
			t.Errorf("negotiated %s on %v", tls.CipherSuiteName(st.CipherSuite), st.CurveID)
		}
	})
}

// TestOpenSSLClient: the refusals as OpenSSL's s_client sees them.
func TestOpenSSLClient(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	ca := gatewaytest.NewCA(t)
	gw, _ := sniGateway(t, ca, "")
	run := func(args ...string) (string, bool) {
		cmd := exec.Command("openssl", append([]string{"s_client", "-connect", gw.Addr, "-servername", "api.example.test"}, args...)...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err == nil && !strings.Contains(string(out), "Cipher is (NONE)")
	}
	for _, args := range [][]string{
		{"-tls1", "-cipher", "ALL:@SECLEVEL=0"},
		{"-tls1_1", "-cipher", "ALL:@SECLEVEL=0"},
		{"-tls1_2", "-cipher", "AES128-SHA:DES-CBC3-SHA:ECDHE-ECDSA-AES128-SHA"},
	} {
		if out, ok := run(args...); ok {
			t.Errorf("openssl %v was accepted:\n%s", args, out)
		}
	}
	for _, args := range [][]string{{"-tls1_2"}, {"-tls1_3"}} {
		if out, ok := run(args...); !ok {
			t.Errorf("openssl %v was refused:\n%s", args, out)
		}
	}
}

// TestSessionTicketsSharedByFile: two gateways reading the same session_ticket_key_file resume
// each other's sessions; one without the file does not.
func TestSessionTicketsSharedByFile(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	start := func(keyFile string) *gatewaytest.Gateway {
		extra := ""
		if keyFile != "" {
			extra = fmt.Sprintf("session_ticket_key_file = %q", keyFile)
		}
		gw, _ := sniGateway(t, ca, extra)
		return gw
	}
	keyFile := filepath.Join(t.TempDir(), "tickets.key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef-shared-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b, other := start(keyFile), start(keyFile), start("")
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cache := tls.NewLRUClientSessionCache(8)
		dial := func(gw *gatewaytest.Gateway) bool {
			t.Helper()
			c, err := tls.Dial("tcp", gw.Addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "api.example.test", ClientSessionCache: cache, MaxVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// TLS 1.3 tickets arrive after the handshake: read to receive them.
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Read(make([]byte, 1))
			return c.ConnectionState().DidResume
		}
		if dial(a) {
			t.Fatalf("version %x: the first connection resumed", version)
		}
		if !dial(a) {
			t.Errorf("version %x: no resumption on the same gateway", version)
		}
		if !dial(b) {
			t.Errorf("version %x: a gateway sharing the key file did not resume the session", version)
		}
		if dial(other) {
			t.Errorf("version %x: a gateway with its own keys resumed the session", version)
		}
	}
}

// TestListenerTimeoutOverride: a listener's own first_byte_timeout applies to its connections
// only; the other listener keeps the server block's.
func TestListenerTimeoutOverride(t *testing.T) {
	up := echoUpstream(t, "u")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  first_byte_timeout = "10s"
}
listener "strict" {
  address            = "127.0.0.1:0"
  first_byte_timeout = "300ms"
}
listener "lenient" {
  address = "127.0.0.1:0"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	silent := func(addr string, wait time.Duration) (closed bool) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(wait))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	start := time.Now()
	if !silent(gw.Addrs["strict"], 5*time.Second) {
		t.Error("a silent connection to the strict listener was kept 5s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the strict listener closed a silent connection after %v, first_byte_timeout is 300ms", d)
	}
	if silent(gw.Addrs["lenient"], 1500*time.Millisecond) {
		t.Error("the lenient listener closed a silent connection within 1.5s; the server's first_byte_timeout is 10s")
	}
}
