package engine_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/ocsp"
)

// TestOCSPStapling serves a certificate file whose certificate names an OCSP responder (a test
// one, signing with the issuing CA's key): the handshakes get its "good" answer stapled. When
// the responder says revoked, nothing is stapled and the gateway logs why.
func TestOCSPStapling(t *testing.T) {
	for _, revoked := range []bool{false, true} {
		t.Run(fmt.Sprintf("revoked=%v", revoked), func(t *testing.T) {
			caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "OCSP test CA"},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
				IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
			caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
			ca, _ := x509.ParseCertificate(caDER)

			var asked atomic.Int64
			responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked.Add(1)
				body, _ := io.ReadAll(r.Body)
				req, err := ocsp.ParseRequest(body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
					ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}
				if revoked {
					tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, time.Now().Add(-time.Minute), ocsp.KeyCompromise
				}
				der, err := ocsp.CreateResponse(ca, ca, tmpl, crypto.Signer(caKey))
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				w.Header().Set("Content-Type", "application/ocsp-response")
				_, _ = w.Write(der)
			}))
			t.Cleanup(responder.Close)

			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(42),
				Subject: pkix.Name{CommonName: "stapled.sluice.test"}, DNSNames: []string{"stapled.sluice.test"},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				OCSPServer: []string{responder.URL}}, ca, &key.PublicKey, caKey)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
			kb, _ := x509.MarshalECPrivateKey(key)
			if err := os.WriteFile(filepath.Join(dir, "cert.pem"), chain, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
				t.Fatal(err)
			}
			up := gatewaytest.Upstream(t, func(*fasthttp.RequestCtx) {})
			src := fmt.Sprintf(`
listener "https" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up)
			g := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir})

			pool := x509.NewCertPool()
			pool.AddCert(ca)
			deadline := time.Now().Add(10 * time.Second)
			reloaded := false
			for {
				conn, err := tls.Dial("tcp", g.Addrs["https"], &tls.Config{ServerName: "stapled.sluice.test", RootCAs: pool})
				if err != nil {
					t.Fatal(err)
				}
				staple := conn.ConnectionState().OCSPResponse
				conn.Close()
				if revoked {
					if len(staple) != 0 {
						t.Fatal("a revoked answer was stapled")
					}
					if strings.Contains(g.Logs(), "not good") {
						return
					}
				} else if len(staple) > 0 {
					resp, err := ocsp.ParseResponseForCert(staple, mustParse(t, leafDER), ca)
					if err != nil || resp.Status != ocsp.Good {
						t.Fatalf("stapled answer: %v, status %d", err, resp.Status)
					}
					if n := asked.Load(); n != 1 {
						t.Fatalf("the responder was asked %d times, want once", n)
					}
					if reloaded {
						return
					}
					// A reload loads the certificate again: it is stapled again, from the
					// answer the gateway has, without asking the responder.
					g.Reload(t, src)
					reloaded = true
				}
				if time.Now().After(deadline) {
					t.Fatalf("no staple, nor a log line, within 10s (responder asked %d times); log:\n%s", asked.Load(), g.Logs())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
