package main

import (
	"crypto/tls"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// TestRunListeners: `sluice run` serves several listeners (a redirecting cleartext one and a TLS
// one); a reload that adds a listener and points at another certificate serves both, on the
// addresses it already had too.
func TestRunListeners(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	first := ca.Issue(t, dir, "a.pem", "a-key.pem", "localhost")
	second := ca.Issue(t, dir, "b.pem", "b-key.pem", "localhost")
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	web, public, internal, adminAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	config := func(cert, extra string) string {
		return fmt.Sprintf(`
admin {
  listen = %q
}
listener "web" {
  address           = %q
  redirect_to_https = true
}
listener "public" {
  address = %q
  tls {
    cert_file = "%s.pem"
    key_file  = "%s-key.pem"
  }
}
%s
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, adminAddr, web, public, cert, cert, extra, up)
	}
	path := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(path, []byte(config("a", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	startSluice(t, path)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://" + web + "/x?y=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(public)
	if want := "https://127.0.0.1:" + port + "/x?y=1"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Errorf("web listener: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	serial := func() *big.Int {
		t.Helper()
		c, err := tls.Dial("tcp", public, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	if serial().Cmp(first.SerialNumber) != 0 {
		t.Fatal("the configured certificate is not served")
	}

	if err := os.WriteFile(path, []byte(config("b", fmt.Sprintf("listener \"internal\" {\n  address = %q\n}\n", internal))), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post("http://"+adminAddr+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	if serial().Cmp(second.SerialNumber) != 0 {
		t.Error("after the reload the previous certificate is served")
	}
	resp, err = http.Get("http://" + internal + "/z")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the added listener: %d", resp.StatusCode)
	}
	resp, err = noFollow.Get("http://" + web + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 308 {
		t.Errorf("web listener after the reload: %d", resp.StatusCode)
	}
}
