package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/pebbletest"
	"github.com/valyala/fasthttp"
)

// TestRunGetsACertificate: `sluice run` with listener blocks and an acme block gets a
// certificate from a real ACME server (Pebble, validation on, HTTP-01 on the cleartext
// listener) and serves HTTPS with it; the storage keeps the keys private.
func TestRunGetsACertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Pebble")
	}
	httpAddr, tlsAddr := freePort(t), freePort(t)
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	var hp, tp int
	fmt.Sscan(httpPort, &hp)
	fmt.Sscan(tlsPort, &tp)
	peb := pebbletest.Start(t, pebbletest.Options{HTTPPort: hp, TLSPort: tp, Validity: time.Hour})
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("hello") })
	storage := filepath.Join(t.TempDir(), "acme")
	const host = "cli.sluice.test"
	cfg := writeConfig(t, fmt.Sprintf(`
listener "http" {
  address           = %q
  redirect_to_https = true
}
listener "https" {
  address = %q
  tls {
    acme {
      email        = "ops@sluice.test"
      ca_url       = %q
      ca_root_file = %q
      storage_dir  = %q
    }
  }
}
admin { listen = "" }
upstream "u" {
  target { address = %q }
}
pipeline "site" {
  match { hosts = [%q] }
  balancer { upstream = upstream.u }
}
`, httpAddr, tlsAddr, peb.DirectoryURL, peb.MinicaFile, storage, up, host))
	startSluice(t, cfg)

	d := &net.Dialer{Timeout: 2 * time.Second}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", tlsAddr) },
		TLSClientConfig:   &tls.Config{RootCAs: peb.Roots(t), ServerName: host},
		DisableKeepAlives: true,
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("https://" + host + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello" {
				t.Fatalf("HTTPS answered %d %q", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTPS with an ACME certificate within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every key the storage holds is readable by its owner only, in folders only the owner opens.
	keys := 0
	err := filepath.WalkDir(storage, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir() && info.Mode().Perm() != 0o700:
			t.Errorf("%s: mode %v, want 0700", p, info.Mode().Perm())
		case filepath.Ext(p) == ".key":
			keys++
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", p, info.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys < 2 { // the account's and the certificate's
		t.Errorf("the storage holds %d key files, want the account's and the certificate's", keys)
	}
}

// TestACMEExampleValidates: examples/acme/gateway.hcl (what examples/acme/run.sh serves) is a
// valid configuration; `sluice validate` warns that its TLS listener is not on port 443.
func TestACMEExampleValidates(t *testing.T) {
	dir := t.TempDir()
	gatewaytest.WriteCert(t, dir, "minica.pem", "minica-key.pem")
	cmd := exec.Command(sluiceBin, "validate", "-c", "../../examples/acme/gateway.hcl")
	cmd.Env = append(os.Environ(), "PEBBLE_MINICA="+filepath.Join(dir, "minica.pem"), "ACME_STORAGE="+filepath.Join(dir, "acme"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice validate: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "TLS-ALPN-01 validates on port 443") {
		t.Errorf("no warning about the TLS listener's port:\n%s", out)
	}
}
