package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSExampleValidates runs examples/tls/make-certs.sh in a copy of the example and checks
// that `sluice validate` accepts the example with those certificates and has nothing to warn
// about (every pipeline host is covered by a certificate).
func TestTLSExampleValidates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found: install the Debian package openssl")
	}
	dir := t.TempDir()
	for _, f := range []string{"gateway.hcl", "make-certs.sh"} {
		b, err := os.ReadFile(filepath.Join("../../examples/tls", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(filepath.Join(dir, "make-certs.sh")).CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	out, err := exec.Command(sluiceBin, "validate", "-c", filepath.Join(dir, "gateway.hcl")).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice validate: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "warning") {
		t.Errorf("warnings on the TLS example:\n%s", out)
	}
}
