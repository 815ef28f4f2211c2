package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// TestReferenceConfigValidates checks that the configuration language's reference file, with the
// files it names, passes `sluice validate`, and that our copy matches the shared one when present.
func TestReferenceConfigValidates(t *testing.T) {
	ref, err := os.ReadFile("../../examples/reference/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if shared, err := os.ReadFile("../../../shared/gateway.reference.hcl"); err == nil && !bytes.Equal(shared, ref) {
		t.Errorf("examples/reference/gateway.hcl differs from the shared gateway.reference.hcl: copy it again")
	}
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install the Debian package wabt")
	}
	dir := t.TempDir()
	gatewaytest.WriteCert(t, filepath.Join(dir, "certs"), "gateway.pem", "gateway-key.pem")
	ca := gatewaytest.NewClientCA(t, "clients")
	for name, b := range map[string][]byte{"clients-ca.pem": ca.PEM, "clients.crl": ca.CRL(t, time.Now(), time.Now().Add(time.Hour))} {
		if err := os.WriteFile(filepath.Join(dir, "certs", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "filters"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Any http-wasm guest serves as filters/geo.wasm; the WAT example needs only wabt to build.
	if out, err := exec.Command(wat2wasm, "../../examples/filters/wat/secheaders.wat", "-o", filepath.Join(dir, "filters/geo.wasm")).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	// basic_auth's users (alice, password wonderland).
	if err := os.WriteFile(filepath.Join(dir, "users.htpasswd"), []byte("alice:$2y$10$ukgJeUPWwiG1SpHJ5ioVUuoOnPE9DccBHgjqkvxVb0CI44eb0ZD46\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(cfg, ref, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sluiceBin, "validate", "-c", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice validate on the reference config: %v\n%s", err, out)
	}
}

// TestQuickstartValidates builds the quickstart's Wasm filter as `make run` does and validates
// examples/quickstart/gateway.hcl with it.
func TestQuickstartValidates(t *testing.T) {
	src, err := os.ReadFile("../../examples/quickstart/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "filters/abrouter.wasm"), "./abrouter")
	build.Dir = "../../examples/filters/go"
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the quickstart filter: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(cfg, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sluiceBin, "validate", "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("sluice validate on the quickstart: %v\n%s", err, out)
	}
}
