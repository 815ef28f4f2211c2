package filters_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// h2Client speaks HTTP/2 only, over connections with server name sni and cert (nil: none),
// reusing one connection for every request.
func h2Client(sni string, cert *tls.Certificate) *http.Client {
	conf := &tls.Config{InsecureSkipVerify: true, ServerName: sni}
	if cert != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// h2Get sends a request for host and fails t unless it is served over HTTP/2 on a reused
// connection (reused; the client's first request opens it).
func h2Get(t *testing.T, c *http.Client, g *gatewaytest.Gateway, host string, reused bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", g.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	// Spoofing attempts: never forwarded.
	req.Header.Set("X-Forwarded-Client-Cert", `Hash=0000;Subject="CN=admin"`)
	req.Header.Set("X-Sluice-Client-Cert-Subject", "CN=admin")
	var wasReused bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { wasReused = i.Reused }}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s: served over %s, want HTTP/2", host, resp.Proto)
	}
	if wasReused != reused {
		t.Errorf("%s: connection reused %v, want %v", host, wasReused, reused)
	}
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), "CN=admin") || strings.Contains(string(b), "Hash=0000") {
		t.Errorf("%s: the client's certificate headers reached the upstream:\n%s", host, b)
	}
	return resp.StatusCode, string(b)
}

// TestMTLSMisdirectedHTTP2: over HTTP/2 a stream whose :authority falls under another
// client_auth policy than the connection's server name gets 421, on a connection that keeps
// serving its own names' streams; the identity reaches the upstream for HTTP/2 streams too.
func TestMTLSMisdirectedHTTP2(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	g := sniGateway(t, p)

	open := h2Client("open.test", nil)
	if status, _ := h2Get(t, open, g, "open.test", false); status != 200 {
		t.Errorf("open name: %d", status)
	}
	if status, _ := h2Get(t, open, g, "secure.test", true); status != 421 {
		t.Errorf("open connection, protected :authority: %d, want 421", status)
	}
	if status, _ := h2Get(t, open, g, "open.test", true); status != 200 {
		t.Errorf("the open connection after a 421: %d", status)
	}

	secure := h2Client("a.secure.test", &p.prod)
	status, body := h2Get(t, secure, g, "b.secure.test", false)
	if status != 200 || !strings.Contains(body, "Hash="+fingerprint(p.prod)) {
		t.Errorf("protected name over HTTP/2: %d\n%s", status, body)
	}
	if status, _ := h2Get(t, secure, g, "open.test", true); status != 421 {
		t.Errorf("protected connection, open :authority: %d, want 421", status)
	}
	noSNI := h2Client("", nil)
	if status, _ := h2Get(t, noSNI, g, "secure.test", false); status != 421 {
		t.Errorf("no server name, protected :authority: %d, want 421", status)
	}
}
