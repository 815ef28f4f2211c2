package filters_test

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// mtlsEcho is an upstream that answers with the request's header block, so a test sees what the
// gateway forwarded.
func mtlsEcho(t *testing.T) string {
	return gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) {
		fc.SetBody(fc.Request.Header.Header())
	})
}

// mtlsPKI is a CA trusted by the gateway (with a CRL), another CA that is not, and client
// certificates: valid ones, an expired one, one from the wrong CA and a revoked one.
type mtlsPKI struct {
	ca, other                      *gatewaytest.ClientCA
	prod, dev, expired, wrong, rev tls.Certificate
	files                          map[string][]byte
}

func newMTLSPKI(t *testing.T, crlNextUpdate time.Time) *mtlsPKI {
	p := &mtlsPKI{ca: gatewaytest.NewClientCA(t, "Sluice Test Client CA"), other: gatewaytest.NewClientCA(t, "Untrusted CA")}
	p.prod = p.ca.IssueClient(t, gatewaytest.ClientCertOptions{CommonName: "billing", URIs: []string{"spiffe://test.example/ns/prod/sa/billing"}, DNSNames: []string{"billing.internal"}})
	p.dev = p.ca.IssueClient(t, gatewaytest.ClientCertOptions{CommonName: "dev", URIs: []string{"spiffe://test.example/ns/dev/sa/tool"}})
	p.expired = p.ca.IssueClient(t, gatewaytest.ClientCertOptions{CommonName: "old", NotBefore: time.Now().Add(-3 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	p.wrong = p.other.IssueClient(t, gatewaytest.ClientCertOptions{CommonName: "billing", URIs: []string{"spiffe://test.example/ns/prod/sa/billing"}})
	p.rev = p.ca.IssueClient(t, gatewaytest.ClientCertOptions{CommonName: "revoked", URIs: []string{"spiffe://test.example/ns/prod/sa/gone"}})
	p.files = map[string][]byte{
		"clients-ca.pem": p.ca.PEM,
		"clients.crl":    p.ca.CRL(t, time.Now().Add(-time.Hour), crlNextUpdate, p.rev),
	}
	return p
}

// mtlsGateway starts a TLS gateway whose listener asks for client certificates in mode.
func mtlsGateway(t *testing.T, p *mtlsPKI, mode, serverExtra, pipelineFilters string) *gatewaytest.Gateway {
	dir := t.TempDir()
	gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
	src := fmt.Sprintf(`
server {
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
    client_auth {
      mode      = %q
      ca_file   = "clients-ca.pem"
      crl_files = ["clients.crl"]
    }
  }
  %s
}
upstream "app" {
  target { address = %q }
}
pipeline "main" {
  %s
  balancer { upstream = upstream.app }
}
`, mode, serverExtra, mtlsEcho(t), pipelineFilters)
	return gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir, Files: p.files})
}

// mtlsGet sends one request on a new connection with cert (nil: none) and returns the status
// and body, or the error (a TLS alert reads "remote error: tls: …").
func mtlsGet(t *testing.T, g *gatewaytest.Gateway, cert *tls.Certificate, path string, header map[string]string) (int, string, error) {
	t.Helper()
	conf := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
	if cert != nil {
		// Sent whatever CAs the server names (crypto/tls would send none from another CA).
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
	req, err := http.NewRequest("GET", g.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func fingerprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// TestMTLSRequire: with mode = "require", a valid client certificate is served and every other
// case ends the handshake with the alert that says why.
func TestMTLSRequire(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	g := mtlsGateway(t, p, "require", "", "")
	status, _, err := mtlsGet(t, g, &p.prod, "/", nil)
	if err != nil || status != 200 {
		t.Fatalf("valid certificate: status %d, err %v", status, err)
	}
	for _, tc := range []struct {
		name  string
		cert  *tls.Certificate
		alert string
	}{
		{"no certificate", nil, "certificate required"},
		{"expired", &p.expired, "expired certificate"},
		{"wrong CA", &p.wrong, "unknown certificate authority"},
		{"revoked", &p.rev, "bad certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, err := mtlsGet(t, g, tc.cert, "/", nil)
			if err == nil || !strings.Contains(err.Error(), "remote error: tls: "+tc.alert) {
				t.Fatalf("status %d, err %v; want the TLS alert %q", status, err, tc.alert)
			}
		})
	}
}

// TestMTLSVerifyIfGiven: with mode = "verify_if_given", no certificate is served without an
// identity, a valid one with it, and an invalid one is still refused.
func TestMTLSVerifyIfGiven(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	g := mtlsGateway(t, p, "verify_if_given", `forward_client_cert = "sanitize_set"`, "")
	status, body, err := mtlsGet(t, g, nil, "/", nil)
	if err != nil || status != 200 {
		t.Fatalf("no certificate: status %d, err %v", status, err)
	}
	if strings.Contains(strings.ToLower(body), "x-forwarded-client-cert") {
		t.Errorf("no certificate, yet the upstream got an X-Forwarded-Client-Cert:\n%s", body)
	}
	status, body, err = mtlsGet(t, g, &p.prod, "/", nil)
	if err != nil || status != 200 {
		t.Fatalf("valid certificate: status %d, err %v", status, err)
	}
	if !strings.Contains(body, "Hash="+fingerprint(p.prod)) {
		t.Errorf("the upstream did not get the certificate's XFCC:\n%s", body)
	}
	for _, tc := range []struct {
		name  string
		cert  *tls.Certificate
		alert string
	}{
		{"expired", &p.expired, "expired certificate"},
		{"wrong CA", &p.wrong, "unknown certificate authority"},
		{"revoked", &p.rev, "bad certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, err := mtlsGet(t, g, tc.cert, "/", nil)
			if err == nil || !strings.Contains(err.Error(), "remote error: tls: "+tc.alert) {
				t.Fatalf("status %d, err %v; want the TLS alert %q", status, err, tc.alert)
			}
		})
	}
}

// TestMTLSExpiredCRL: a revocation list past its next update refuses every certificate of its
// CA (it can no longer vouch that one is not revoked), and the gateway logs why.
func TestMTLSExpiredCRL(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(-time.Minute))
	g := mtlsGateway(t, p, "require", "", "")
	status, _, err := mtlsGet(t, g, &p.prod, "/", nil)
	if err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
		t.Fatalf("status %d, err %v; want the TLS alert bad certificate", status, err)
	}
	if !strings.Contains(g.Logs(), "revocation list is past its next update") {
		t.Errorf("no log line says why:\n%s", g.Logs())
	}
}

// TestMTLSXFCCNotSpoofable: X-Forwarded-Client-Cert and the X-Sluice-Client-Cert-* headers a
// client sends (any spelling) never reach the upstream; with sanitize_set the upstream gets the
// gateway's own element, and with the default (sanitize) nothing.
func TestMTLSXFCCNotSpoofable(t *testing.T) {
	spoof := map[string]string{
		"X-Forwarded-Client-Cert":      `Hash=0000;Subject="CN=admin"`,
		"X_Forwarded_Client_Cert":      `Hash=1111`,
		"X-Sluice-Client-Cert-Subject": "CN=admin",
		"X_Sluice_Client_Cert_URI":     "spiffe://evil",
	}
	for _, mode := range []string{"sanitize", "sanitize_set", "forward_only", "append_forward"} {
		t.Run(mode, func(t *testing.T) {
			p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
			g := mtlsGateway(t, p, "verify_if_given", fmt.Sprintf("forward_client_cert = %q", mode), "")
			for _, cert := range []*tls.Certificate{nil, &p.prod} {
				status, body, err := mtlsGet(t, g, cert, "/", spoof)
				if err != nil || status != 200 {
					t.Fatalf("status %d, err %v", status, err)
				}
				for _, bad := range []string{"Hash=0000", "Hash=1111", "CN=admin", "spiffe://evil", "X-Sluice-Client-Cert", "X_Sluice"} {
					if strings.Contains(body, bad) {
						t.Errorf("cert=%v: the client's %q reached the upstream:\n%s", cert != nil, bad, body)
					}
				}
				want := cert != nil && (mode == "sanitize_set" || mode == "append_forward")
				want1 := fmt.Sprintf(`X-Forwarded-Client-Cert: Hash=%s;Subject="CN=billing,O=Sluice Test";URI=spiffe://test.example/ns/prod/sa/billing;DNS=billing.internal`, fingerprint(p.prod))
				if got := strings.Contains(body, want1); got != want {
					t.Errorf("cert=%v: the upstream got the gateway's XFCC: %v, want %v:\n%s", cert != nil, got, want, body)
				}
			}
		})
	}
}

// TestMTLSIdentityInFilters: the verified identity reaches authorize (client_cert rules),
// rate_limit (key = "client_cert"), otel_log and a Wasm guest (X-Sluice-Client-Cert-* while it
// runs, never forwarded).
func TestMTLSIdentityInFilters(t *testing.T) {
	dir := t.TempDir()
	wat := filepath.Join(dir, "cert.wat")
	if err := os.WriteFile(wat, []byte(certGuest), 0o644); err != nil {
		t.Fatal(err)
	}
	guest := filepath.Join(dir, "cert.wasm")
	if out, err := exec.Command("wat2wasm", wat, "-o", guest).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm (Debian package wabt): %v\n%s", err, out)
	}
	module, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	p.files["cert.wasm"] = module
	logFile := filepath.Join(t.TempDir(), "access.log")
	g := mtlsGateway(t, p, "verify_if_given", "", fmt.Sprintf(`
  filter "otel_log" {
    output = %q
  }
  filter "authorize" {
    rule {
      path_prefix = "/admin/"
      client_cert {
        uri_sans = ["spiffe://test.example/ns/prod/*"]
      }
    }
    rule {
      path_prefix = "/fp/"
      client_cert {
        fingerprint = [%q]
      }
    }
  }
  filter "rate_limit" {
    key    = "client_cert"
    limit  = 3
    period = "1h"
  }
  filter "wasm" {
    module = "cert.wasm"
  }`, logFile, strings.ToUpper(fingerprint(p.dev))))

	// authorize
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		path string
		want int
	}{
		{"prod SPIFFE ID", &p.prod, "/admin/x", 200},
		{"dev SPIFFE ID", &p.dev, "/admin/x", 403},
		{"no certificate", nil, "/admin/x", 403},
		{"fingerprint listed", &p.dev, "/fp/x", 200},
		{"fingerprint not listed", &p.prod, "/fp/x", 403},
	} {
		status, _, err := mtlsGet(t, g, tc.cert, tc.path, nil)
		if err != nil || status != tc.want {
			t.Errorf("authorize, %s: status %d (err %v), want %d", tc.name, status, err, tc.want)
		}
	}
	// rate_limit (after authorize, so refused requests did not count): prod has used 1 of 3,
	// dev 1, the anonymous key (no certificate) none.
	for i, want := range []int{200, 200, 429} {
		if status, _, err := mtlsGet(t, g, &p.prod, "/", nil); status != want {
			t.Errorf("rate_limit: request %d of one certificate got %d (err %v), want %d", i+2, status, err, want)
		}
	}
	if status, _, err := mtlsGet(t, g, &p.dev, "/", nil); status != 200 {
		t.Errorf("rate_limit: another certificate got %d (err %v), want 200", status, err)
	}
	status, body, err := mtlsGet(t, g, nil, "/", nil)
	if err != nil || status != 200 {
		t.Fatalf("rate_limit: no certificate got %d (err %v), want 200", status, err)
	}
	if strings.Contains(body, "X-Guest-Subject") {
		t.Errorf("without a certificate the guest saw one:\n%s", body)
	}
	// The guest's view, and nothing of it forwarded.
	p3 := p.ca.IssueClient(t, gatewaytest.ClientCertOptions{CommonName: "guest-check"})
	status, body, err = mtlsGet(t, g, &p3, "/", nil)
	if err != nil || status != 200 {
		t.Fatalf("status %d, err %v", status, err)
	}
	if !strings.Contains(body, "X-Guest-Subject: CN=guest-check,O=Sluice Test") {
		t.Errorf("the guest did not see X-Sluice-Client-Cert-Subject:\n%s", body)
	}
	if strings.Contains(body, "X-Sluice-Client-Cert") {
		t.Errorf("X-Sluice-Client-Cert-* reached the upstream:\n%s", body)
	}
	// otel_log
	want := fmt.Sprintf(`"client_cert":{"subject":"CN=guest-check,O=Sluice Test","fingerprint":"%s"`, fingerprint(p3))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access log has no %s:\n%s", want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// certGuest copies the request header X-Sluice-Client-Cert-Subject, if any, to X-Guest-Subject.
const certGuest = `(module
  (import "http_handler" "get_header_values" (func $get (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value" (func $set (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-sluice-client-cert-subject")
  (data (i32.const 32) "x-guest-subject")
  (func (export "handle_request") (result i64)
    (local $n i32)
    (local.set $n (i32.wrap_i64 (call $get (i32.const 0) (i32.const 0) (i32.const 28) (i32.const 1024) (i32.const 1024))))
    (if (i32.gt_u (local.get $n) (i32.const 1))
      (then (call $set (i32.const 0) (i32.const 32) (i32.const 15) (i32.const 1024) (i32.sub (local.get $n) (i32.const 1)))))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
`

// sniGateway serves open.test (no client certificate) and secure.test, *.secure.test (client
// certificates required) on one TLS listener, each name with its own certificate block.
func sniGateway(t *testing.T, p *mtlsPKI) *gatewaytest.Gateway {
	dir := t.TempDir()
	serverCA := gatewaytest.NewCA(t)
	serverCA.Issue(t, dir, "open.pem", "open-key.pem", "open.test")
	serverCA.Issue(t, dir, "secure.pem", "secure-key.pem", "secure.test", "*.secure.test")
	src := fmt.Sprintf(`
server {
  tls {
    certificate {
      cert_file = "open.pem"
      key_file  = "open-key.pem"
    }
    certificate {
      cert_file = "secure.pem"
      key_file  = "secure-key.pem"
      client_auth {
        mode      = "require"
        ca_file   = "clients-ca.pem"
        crl_files = ["clients.crl"]
      }
    }
  }
  forward_client_cert = "sanitize_set"
}
upstream "app" {
  target { address = %q }
}
pipeline "main" {
  balancer { upstream = upstream.app }
}
`, mtlsEcho(t))
	return gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir, Files: p.files})
}

// sniGet sends one request on a new HTTP/1.1 connection with server name sni ("" sends none)
// and Host host.
func sniGet(t *testing.T, g *gatewaytest.Gateway, sni, host string, cert *tls.Certificate) (int, string, error) {
	t.Helper()
	conf := &tls.Config{InsecureSkipVerify: true, ServerName: sni}
	if cert != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
	req, err := http.NewRequest("GET", g.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestMTLSMisdirected: client_auth per certificate block (per server name), and 421 for a
// request whose Host falls under another policy than the connection's server name, so that a
// handshake with an open name (or none) never reaches a name that requires certificates.
func TestMTLSMisdirected(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	g := sniGateway(t, p)
	for _, tc := range []struct {
		name, sni, host string
		cert            *tls.Certificate
		want            int
	}{
		{"open name", "open.test", "open.test", nil, 200},
		{"open handshake, protected host", "open.test", "secure.test", nil, 421},
		{"open handshake with a certificate, protected host", "open.test", "secure.test", &p.prod, 421},
		{"protected name", "secure.test", "secure.test", &p.prod, 200},
		{"protected handshake, open host", "secure.test", "open.test", &p.prod, 421},
		{"wildcard, same policy", "a.secure.test", "b.secure.test", &p.prod, 200},
		{"wildcard to its parent, same policy", "a.secure.test", "secure.test:443", &p.prod, 200},
		{"no server name, open host", "", "open.test", nil, 200},
		{"no server name, protected host", "", "secure.test", nil, 421},
		{"no server name, unknown host", "", "other.test", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, err := sniGet(t, g, tc.sni, tc.host, tc.cert)
			if err != nil || status != tc.want {
				t.Fatalf("status %d (err %v), want %d", status, err, tc.want)
			}
			if status == 200 && tc.cert != nil && tc.sni != "open.test" && !strings.Contains(body, "Hash="+fingerprint(*tc.cert)) {
				t.Errorf("the upstream did not get the client certificate:\n%s", body)
			}
		})
	}
	if _, _, err := sniGet(t, g, "secure.test", "secure.test", nil); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("protected name without a certificate: err %v, want the alert certificate required", err)
	}
	if _, _, err := sniGet(t, g, "x.secure.test", "x.secure.test", &p.rev); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("protected name with a revoked certificate: err %v, want the alert bad certificate", err)
	}
}

// TestMTLSXFCCFromTrustedProxy: a trusted proxy's X-Forwarded-Client-Cert passes with
// forward_only (as it is) and append_forward (this connection's element appended); sanitize and
// sanitize_set drop it even from a trusted proxy.
func TestMTLSXFCCFromTrustedProxy(t *testing.T) {
	const theirs = `Hash=abcd;Subject="CN=edge-client"`
	for _, tc := range []struct {
		mode string
		want func(ours string) string // the upstream's header line; "" none
	}{
		{"sanitize", func(string) string { return "" }},
		{"sanitize_set", func(ours string) string { return ours }},
		{"forward_only", func(string) string { return theirs }},
		{"append_forward", func(ours string) string { return theirs + "," + ours }},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
			g := mtlsGateway(t, p, "require", fmt.Sprintf("forward_client_cert = %q\n  trusted_proxies = [\"127.0.0.1/32\"]", tc.mode), "")
			status, body, err := mtlsGet(t, g, &p.prod, "/", map[string]string{"X-Forwarded-Client-Cert": theirs})
			if err != nil || status != 200 {
				t.Fatalf("status %d, err %v", status, err)
			}
			ours := fmt.Sprintf(`Hash=%s;Subject="CN=billing,O=Sluice Test";URI=spiffe://test.example/ns/prod/sa/billing;DNS=billing.internal`, fingerprint(p.prod))
			var got string
			for _, line := range strings.Split(body, "\r\n") {
				if v, ok := strings.CutPrefix(line, "X-Forwarded-Client-Cert: "); ok {
					got = v
				}
			}
			if want := tc.want(ours); got != want {
				t.Errorf("the upstream got X-Forwarded-Client-Cert %q, want %q", got, want)
			}
		})
	}
}

// TestMTLSCRLReload: a replaced revocation list takes effect without a reload: the listener
// watches its client_auth files as it does its certificates. New handshakes with the revoked
// certificate fail, and a connection made before gets 403 for its next request.
func TestMTLSCRLReload(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	g := mtlsGateway(t, p, "require", "", "")
	if status, _, err := mtlsGet(t, g, &p.prod, "/", nil); err != nil || status != 200 {
		t.Fatalf("before: status %d, err %v", status, err)
	}
	// A kept-alive connection made before the CRL changes.
	kept, err := tls.Dial("tcp", g.Addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &p.prod, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	keptReader := bufio.NewReader(kept)
	keptGet := func() int {
		t.Helper()
		if _, err := io.WriteString(kept, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(keptReader, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := keptGet(); status != 200 {
		t.Fatalf("kept connection before: %d", status)
	}
	crl := p.ca.CRL(t, time.Now(), time.Now().Add(24*time.Hour), p.rev, p.prod)
	tmp := filepath.Join(g.Dir, "clients.crl.new")
	if err := os.WriteFile(tmp, crl, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(g.Dir, "clients.crl")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _, err := mtlsGet(t, g, &p.prod, "/", nil)
		if err != nil && strings.Contains(err.Error(), "bad certificate") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new CRL was not picked up: err %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _, err := mtlsGet(t, g, &p.dev, "/", nil); err != nil || status != 200 {
		t.Errorf("a certificate the new list does not revoke: status %d, err %v", status, err)
	}
	if status := keptGet(); status != 403 {
		t.Errorf("the connection made before the revocation: %d, want 403", status)
	}
	if !strings.Contains(g.Logs(), "client certificate is no longer accepted") {
		t.Errorf("no log line says why:\n%s", g.Logs())
	}
}

// anySessionCache offers the last session it was given to every server name, as a client
// trying to carry a session to another name would.
type anySessionCache struct{ last *tls.ClientSessionState }

func (c *anySessionCache) Get(string) (*tls.ClientSessionState, bool) { return c.last, c.last != nil }
func (c *anySessionCache) Put(_ string, s *tls.ClientSessionState) {
	if s != nil {
		c.last = s
	}
}

// TestMTLSResumptionAcrossPolicies: a TLS session that began under one name's client_auth is
// not resumed under another name whose CA did not issue its certificate (crypto/tls checks the
// restored chain against the configuration GetConfigForClient chose), while resuming under the
// same name works.
func TestMTLSResumptionAcrossPolicies(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	dir := t.TempDir()
	serverCA := gatewaytest.NewCA(t)
	serverCA.Issue(t, dir, "a.pem", "a-key.pem", "a.test")
	serverCA.Issue(t, dir, "b.pem", "b-key.pem", "b.test")
	p.files["other-ca.pem"] = p.other.PEM
	src := fmt.Sprintf(`
server {
  tls {
    certificate {
      cert_file = "a.pem"
      key_file  = "a-key.pem"
      client_auth {
        ca_file = "clients-ca.pem"
      }
    }
    certificate {
      cert_file = "b.pem"
      key_file  = "b-key.pem"
      client_auth {
        ca_file = "other-ca.pem"
      }
    }
  }
}
upstream "app" {
  target { address = %q }
}
pipeline "main" {
  balancer { upstream = upstream.app }
}
`, mtlsEcho(t))
	g := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir, Files: p.files})
	cache := &anySessionCache{}
	get := func(sni string) (bool, error) {
		conf := &tls.Config{InsecureSkipVerify: true, ServerName: sni, ClientSessionCache: cache,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &p.prod, nil }}
		conn, err := tls.Dial("tcp", g.Addr, conf)
		if err != nil {
			return false, err
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", sni); err != nil {
			return false, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return false, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return false, fmt.Errorf("status %d", resp.StatusCode)
		}
		return conn.ConnectionState().DidResume, nil
	}
	if _, err := get("a.test"); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if resumed, err := get("a.test"); err != nil || !resumed {
		t.Fatalf("resuming under the same name: resumed %v, err %v", resumed, err)
	}
	resumed, err := get("b.test")
	if err == nil {
		t.Fatalf("a session of a.test (client CA %q) was served under b.test, whose client CA did not issue it (resumed %v)", p.ca.Cert.Subject, resumed)
	}
	if !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("err %v, want a full handshake refused with the alert unknown certificate authority", err)
	}
}

// TestMTLSListenerBlocks: client_auth in a listener block's tls applies to that listener only,
// and pipelines restricted to it see the identity.
func TestMTLSListenerBlocks(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	dir := t.TempDir()
	gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
	src := fmt.Sprintf(`
listener "public" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }
}
listener "internal" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
    client_auth {
      ca_file = "clients-ca.pem"
    }
  }
}
server {
  forward_client_cert = "sanitize_set"
}
upstream "app" {
  target { address = %q }
}
pipeline "internal" {
  match { listeners = ["internal"] }
  filter "authorize" {
    rule {
      client_cert { uri_sans = ["spiffe://test.example/ns/prod/*"] }
    }
  }
  balancer { upstream = upstream.app }
}
pipeline "public" {
  match { listeners = ["public"] }
  balancer { upstream = upstream.app }
}
`, mtlsEcho(t))
	g := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir, Files: p.files})
	get := func(listener string, cert *tls.Certificate) (int, string, error) {
		conf := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
		if cert != nil {
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
		resp, err := client.Get("https://" + g.Addrs[listener] + "/")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if status, body, err := get("public", nil); err != nil || status != 200 || strings.Contains(body, "X-Forwarded-Client-Cert") {
		t.Errorf("public listener without a certificate: status %d, err %v\n%s", status, err, body)
	}
	if _, _, err := get("internal", nil); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("internal listener without a certificate: err %v, want the alert certificate required", err)
	}
	if status, body, err := get("internal", &p.prod); err != nil || status != 200 || !strings.Contains(body, "Hash="+fingerprint(p.prod)) {
		t.Errorf("internal listener, prod certificate: status %d, err %v\n%s", status, err, body)
	}
	if status, _, err := get("internal", &p.dev); err != nil || status != 403 {
		t.Errorf("internal listener, dev certificate: status %d (err %v), want 403", status, err)
	}
}

// TestMTLSForwardPerPipeline: a pipeline's forward_client_cert overrides the server's, for a
// trusted proxy's header as for the gateway's own element.
func TestMTLSForwardPerPipeline(t *testing.T) {
	p := newMTLSPKI(t, time.Now().Add(24*time.Hour))
	dir := t.TempDir()
	gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
	up := mtlsEcho(t)
	src := fmt.Sprintf(`
server {
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
    client_auth {
      ca_file = "clients-ca.pem"
    }
  }
  trusted_proxies = ["127.0.0.1/32"]
}
upstream "app" {
  target { address = %q }
}
pipeline "set" {
  match { path_prefix = "/set/" }
  forward_client_cert = "sanitize_set"
  balancer { upstream = upstream.app }
}
pipeline "fwd" {
  match { path_prefix = "/fwd/" }
  forward_client_cert = "forward_only"
  balancer { upstream = upstream.app }
}
pipeline "default" {
  balancer { upstream = upstream.app }
}
`, up)
	g := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir, Files: p.files})
	const theirs = `Hash=abcd`
	ours := "Hash=" + fingerprint(p.prod) + ";"
	for _, tc := range []struct{ path, want string }{
		{"/set/x", ours}, {"/fwd/x", theirs}, {"/other", ""},
	} {
		status, body, err := mtlsGet(t, g, &p.prod, tc.path, map[string]string{"X-Forwarded-Client-Cert": theirs})
		if err != nil || status != 200 {
			t.Fatalf("%s: status %d, err %v", tc.path, status, err)
		}
		var got string
		for _, line := range strings.Split(body, "\r\n") {
			if v, ok := strings.CutPrefix(line, "X-Forwarded-Client-Cert: "); ok {
				got = v
			}
		}
		if (tc.want == "" && got != "") || !strings.HasPrefix(got, tc.want) || (tc.want == theirs && got != theirs) {
			t.Errorf("%s: the upstream got X-Forwarded-Client-Cert %q, want %q…", tc.path, got, tc.want)
		}
	}
}
