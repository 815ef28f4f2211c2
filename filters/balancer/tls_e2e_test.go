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
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/balancer"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// testCA makes a CA and a server certificate for host, signed by it.
func testCA(t *testing.T, host string) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestHTTPSUpstream(t *testing.T) {
	const host = "secure.upstream.test"
	caPEM, cert := testCA(t, host)
	var mu sync.Mutex
	var sni []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn := tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			sni = append(sni, hi.ServerName)
			mu.Unlock()
			return nil, nil
		},
	})
	srv := &fasthttp.Server{Logger: quiet{}, Handler: func(c *fasthttp.RequestCtx) {
		if c.IsTLS() {
			c.SetBodyString("tls " + string(c.Request.Header.RequestURI()))
		}
	}}
	go srv.Serve(tlsLn) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	res := &fakeResolver{m: map[string][]string{host: {"127.0.0.1"}}}
	defer balancer.SetResolver(res)()
	upstream := func(extra string) string {
		return `server {}
upstream "u" {
  target {
    address = "` + host + `:` + port + `"
    tls = true
` + extra + `
  }
}
pipeline "p" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.u
  }
}`
	}
	t.Run("trusted CA", func(t *testing.T) {
		gw := gatewaytest.StartWith(t, upstream(`    ca_file = "ca.pem"`), gatewaytest.Options{Files: map[string][]byte{"ca.pem": caPEM}})
		resp, body := rawRequest(t, gw.Addr, "GET /a%26b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != "tls /a%26b" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(sni) == 0 || sni[len(sni)-1] != host {
			t.Errorf("SNI %v, want %s", sni, host)
		}
	})
	t.Run("unknown CA is refused", func(t *testing.T) {
		gw := gatewaytest.Start(t, upstream(""))
		code, _, err := get(t, gatewaytest.Client(), gw.URL+"/x")
		if err != nil || code != 502 {
			t.Fatalf("got %d %v, want 502: the certificate is not from a system root", code, err)
		}
	})
}

// quiet drops a test server's log lines (the refused handshake is expected).
type quiet struct{}

func (quiet) Printf(string, ...any) {}
