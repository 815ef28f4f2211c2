package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// TestWatchReloadsOnInputChange: --watch reloads when a file the configuration read changes, not
// only the configuration file: a rebuilt Wasm module (replaced by a rename, as build tools do)
// and a file read with file().
func TestWatchReloadsOnInputChange(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install the Debian package wabt")
	}
	wat, err := os.ReadFile("../../examples/filters/wat/secheaders.wat")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// build writes a module that sets X-Frame-Options to value (4 bytes, as DENY).
	build := func(value, out string) {
		t.Helper()
		src := filepath.Join(dir, value+".wat")
		if err := os.WriteFile(src, []byte(strings.Replace(string(wat), `"DENY"`, `"`+value+`"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(wat2wasm, src, "-o", out).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm: %v\n%s", err, b)
		}
	}
	module := filepath.Join(dir, "sec.wasm")
	build("AAAA", module)
	marker := filepath.Join(dir, "marker.txt")
	if err := os.WriteFile(marker, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	cfg := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`server {
  listen = %q
}
admin {
  listen = ""
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    response_set = { "X-Marker" = file("marker.txt") }
  }
  filter "wasm" {
    module = "sec.wasm"
  }
  balancer { upstream = upstream.u }
}
`, listen, up)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, logs := startSluice(t, cfg, "--watch")
	url := "http://" + listen + "/x"
	get := func() (string, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Marker"), resp.Header.Get("X-Frame-Options")
	}
	await := func(what, marker, frame string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			m, f := get()
			if m == marker && f == frame {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: X-Marker %q, X-Frame-Options %q; want %q, %q\n%s", what, m, f, marker, frame, logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	await("at start", "one", "AAAA")

	// file(): rewritten in place, its time moved on for coarse file systems.
	if err := os.WriteFile(marker, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(marker, later, later)
	await("after file() input changed", "two", "AAAA")

	// The module: built beside and renamed over the old one.
	build("BBBB", module+".tmp")
	if err := os.Rename(module+".tmp", module); err != nil {
		t.Fatal(err)
	}
	await("after the module was rebuilt", "two", "BBBB")
	if !strings.Contains(logs.String(), "configuration inputs changed") {
		t.Errorf("no log line says why the configuration reloaded:\n%s", logs)
	}
}

// TestWatchReloadsRenewedCertificate: with --watch, renewed certificate files (same paths) are
// served after the reload they trigger; the server block itself did not change.
func TestWatchReloadsRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	cfg := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`server {
  listen = %q
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }
}
admin {
  listen = ""
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, listen, up)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, logs := startSluice(t, cfg, "--watch")
	serial := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", listen, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	time.Sleep(10 * time.Millisecond) // the serial is the time in nanoseconds
	gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
	later := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(filepath.Join(dir, "cert.pem"), later, later)
	deadline := time.Now().Add(15 * time.Second)
	for serial() == first {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
