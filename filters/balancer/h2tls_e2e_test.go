package balancer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/filters"
	sluicehcl "github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// pki is a test CA that issues server and client certificates.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for cn (a server certificate for the DNS name cn, or a client
// one) as PEM, with its key, and as a tls.Certificate.
func (p *pki) issue(t *testing.T, cn string, client bool) (certPEM, keyPEM []byte, cert tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.DNSNames = []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, cert
}

// tlsEcho answers like echoH2, adding the client certificate's subject and the SNI.
func tlsEcho(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		w.Header().Set("X-Up-SNI", r.TLS.ServerName)
		if len(r.TLS.PeerCertificates) > 0 {
			w.Header().Set("X-Up-Client", r.TLS.PeerCertificates[0].Subject.CommonName)
		}
	}
	echoH2(w, r)
}

const upstreamHost = "secure.upstream.test"

// TestH2TLSUpstream: protocol h2 and auto over TLS, server_name, a client certificate for an
// upstream that requires one (mTLS), and the failures each gets wrong.
func TestH2TLSUpstream(t *testing.T) {
	ca := newPKI(t, "upstream CA")
	_, _, srvCert := ca.issue(t, upstreamHost, false)
	clientCA := newPKI(t, "client CA")
	clientCert, clientKey, _ := clientCA.issue(t, "sluice-gateway", true)
	otherCA := newPKI(t, "other CA")
	otherCert, otherKey, _ := otherCA.issue(t, "stranger", true)
	files := map[string][]byte{
		"ca.pem": ca.PEM, "client.pem": clientCert, "client-key.pem": clientKey,
		"other.pem": otherCert, "other-key.pem": otherKey,
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCA.PEM)
	plain := startH2Upstream(t, http.HandlerFunc(tlsEcho), &tls.Config{Certificates: []tls.Certificate{srvCert}}, 0)
	mtls := startH2Upstream(t, http.HandlerFunc(tlsEcho), &tls.Config{
		Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
	}, 0)
	h1only := startH2Upstream(t, http.HandlerFunc(tlsEcho), &tls.Config{Certificates: []tls.Certificate{srvCert}}, 0)
	var p http.Protocols
	p.SetHTTP1(true)
	h1only.Srv.Protocols = &p // read when each connection starts: HTTP/1.1 only from now on

	const verified = `    tls = true
    ca_file = "ca.pem"
    server_name = "` + upstreamHost + `"`
	for _, tc := range []struct {
		name, protocol, target, extra string
		wantStatus                    int
		wantProto, wantClient         string
		wantLog                       string
	}{
		{name: "h2 with server_name", protocol: "h2", target: plain.Addr, extra: verified, wantStatus: 201, wantProto: "HTTP/2.0"},
		{name: "auto chooses h2", protocol: "auto", target: plain.Addr, extra: verified, wantStatus: 201, wantProto: "HTTP/2.0"},
		{name: "auto falls back to HTTP/1.1", protocol: "auto", target: h1only.Addr, extra: verified, wantStatus: 201, wantProto: "HTTP/1.1"},
		{name: "h2 refuses a target without h2", protocol: "h2", target: h1only.Addr, extra: verified, wantStatus: 502, wantLog: "no application protocol"},
		{name: "wrong server_name", protocol: "h2", target: plain.Addr, extra: "    tls = true\n    ca_file = \"ca.pem\"\n    server_name = \"other.test\"",
			wantStatus: 502, wantLog: "certificate is valid for " + upstreamHost},
		{name: "no server_name: the address is verified", protocol: "h2", target: plain.Addr, extra: "    tls = true\n    ca_file = \"ca.pem\"",
			wantStatus: 502, wantLog: "127.0.0.1"},
		{name: "mTLS h2", protocol: "h2", target: mtls.Addr, extra: verified + "\n    cert_file = \"client.pem\"\n    key_file = \"client-key.pem\"",
			wantStatus: 201, wantProto: "HTTP/2.0", wantClient: "sluice-gateway"},
		{name: "mTLS http1", protocol: "http1", target: mtls.Addr, extra: verified + "\n    cert_file = \"client.pem\"\n    key_file = \"client-key.pem\"",
			wantStatus: 201, wantProto: "HTTP/1.1", wantClient: "sluice-gateway"},
		{name: "mTLS without a certificate", protocol: "h2", target: mtls.Addr, extra: verified, wantStatus: 502, wantLog: "502 Bad Gateway"},
		{name: "mTLS with another CA's certificate", protocol: "h2", target: mtls.Addr,
			extra: verified + "\n    cert_file = \"other.pem\"\n    key_file = \"other-key.pem\"", wantStatus: 502, wantLog: "502 Bad Gateway"},
		{name: "insecure_skip_verify", protocol: "h2", target: plain.Addr, extra: "    tls = true\n    insecure_skip_verify = true",
			wantStatus: 201, wantProto: "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := gatewaytest.StartWith(t, h2Config("", tc.protocol, []string{tc.target}, tc.extra, ""), gatewaytest.Options{Files: files})
			resp, body := rawRequest(t, gw.Addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%q), want %d; log:\n%s", resp.StatusCode, body, tc.wantStatus, gw.Logs())
			}
			if tc.wantStatus == 201 {
				if got := resp.Header.Get("X-Up-Proto"); got != tc.wantProto {
					t.Errorf("upstream saw %s, want %s", got, tc.wantProto)
				}
				if got := resp.Header.Get("X-Up-SNI"); strings.Contains(tc.extra, "server_name") && got != upstreamHost {
					t.Errorf("SNI %q, want %s", got, upstreamHost)
				}
				if got := resp.Header.Get("X-Up-Client"); got != tc.wantClient {
					t.Errorf("client certificate %q, want %q", got, tc.wantClient)
				}
			}
			if tc.wantLog != "" {
				// The 5xx leaves a log line saying why.
				if !waitUntil(2*time.Second, func() bool { return strings.Contains(gw.Logs(), tc.wantLog) }) {
					t.Fatalf("no log line with %q:\n%s", tc.wantLog, gw.Logs())
				}
			}
			if strings.Contains(gw.Logs(), "BEGIN") {
				t.Error("key material in the log")
			}
		})
	}
}

// TestUpstreamTLSValidation: the TLS attributes' errors and the insecure_skip_verify warning.
func TestUpstreamTLSValidation(t *testing.T) {
	for _, tc := range []struct {
		name, protocol, target string
		wantSev                hcl.DiagnosticSeverity
		want                   string
	}{
		{"insecure warns", "http1", "tls = true\n insecure_skip_verify = true", hcl.DiagWarning, "NOT verified"},
		{"insecure with ca_file", "http1", "tls = true\n insecure_skip_verify = true\n ca_file = \"x.pem\"", hcl.DiagError, "has no effect with insecure_skip_verify"},
		{"server_name needs tls", "http1", "server_name = \"a.test\"", hcl.DiagError, "server_name: Needs tls = true"},
		{"server_name with a port", "http1", "tls = true\n server_name = \"a.test:443\"", hcl.DiagError, "not a host name"},
		{"cert without key", "http1", "tls = true\n cert_file = \"c.pem\"", hcl.DiagError, "go together"},
		{"key needs tls", "http1", "key_file = \"k.pem\"\n cert_file = \"c.pem\"", hcl.DiagError, "key_file: Needs tls = true"},
		{"h2 needs tls", "h2", "", hcl.DiagError, `use "h2c" for cleartext`},
		{"h2c refuses tls", "h2c", "tls = true", hcl.DiagError, `use "h2" (or "auto")`},
		{"unknown protocol", "http3", "", hcl.DiagError, "unknown protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := h2Config("", tc.protocol, []string{"127.0.0.1:1"}, tc.target, "")
			_, diags := sluicehcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
			var found bool
			for _, d := range diags {
				if d.Severity == tc.wantSev && strings.Contains(strings.ToLower(d.Detail), strings.ToLower(tc.want)) {
					found = true
					if d.Subject == nil || d.Subject.Start.Line < 4 {
						t.Errorf("diagnostic %q not on its attribute: %v", d.Detail, d.Subject)
					}
				}
			}
			if !found {
				t.Fatalf("no %v diagnostic containing %q in %v", tc.wantSev, tc.want, diags)
			}
		})
	}
}

// waitUntil polls cond every 5ms for up to d.
func waitUntil(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}
