// Package ship holds the tests of what make dist and make image ship, and of the deployment
// examples: a module of its own, so that go-containerregistry and k8s.io/api stay out of the
// gateway's go.mod (RATIONALE.md, "Why a module of its own for shipping?").
package ship

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// distBuild builds with make dist's build flags but PGO (a PGO build is a second full compile of every
// package, minutes on CI's two cores; make dist itself uses it).
// Under -short it skips the test: a cold build takes minutes on two cores.
func distBuild(t *testing.T, out string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the gateway (-short)")
	}
	ld := "-s -w -buildid= -X main.version=v0.0.0-dist -X main.commit=0123456789abcdef0123456789abcdef01234567 -X main.buildTime=1700000000"
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-tags", "grpcnotrace", "-ldflags", ld, "-o", out, "./cmd/sluice")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
}

// TestDistReproducibleStatic: two builds with make dist's flags are byte for byte the same, the
// binary is static (no ELF interpreter, no dynamic section), prints the injected version with the
// commit's time, and the SBOM of it names the binary's SHA-256 and the modules linked in.
func TestDistReproducibleStatic(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks a linux binary")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a", "sluice"), filepath.Join(dir, "b", "sluice")
	distBuild(t, a)
	distBuild(t, b)
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ba) == 0 || !bytes.Equal(ba, bb) {
		t.Fatalf("two builds differ (%d and %d bytes)", len(ba), len(bb))
	}
	f, err := elf.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: not static", p.Type)
		}
	}
	f.Close()
	out, err := exec.Command(a, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sluice v0.0.0-dist\ncommit: 0123456789abcdef0123456789abcdef01234567\n") ||
		!strings.HasSuffix(string(out), "built: 2023-11-14T22:13:20Z\n") {
		t.Errorf("sluice version: %v\n%s", err, out)
	}

	sbom := filepath.Join(dir, "sbom.json")
	run := exec.Command("go", "run", "./cmd/sbom", "-version", "v0.0.0-dist", "-time", "1700000000", "-o", sbom, a)
	if b, err := run.CombinedOutput(); err != nil {
		t.Fatalf("sbom: %v\n%s", err, b)
	}
	var doc struct {
		SPDXVersion  string `json:"spdxVersion"`
		CreationInfo struct{ Created string }
		Packages     []struct {
			Name, VersionInfo string
			Checksums         []struct{ Algorithm, ChecksumValue string }
		}
	}
	raw, err := os.ReadFile(sbom)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ba)
	found := map[string]string{}
	for _, p := range doc.Packages {
		found[p.Name] = p.VersionInfo
		if p.Name == "sluice" && (len(p.Checksums) != 1 || p.Checksums[0].ChecksumValue != hex.EncodeToString(sum[:])) {
			t.Errorf("the binary's checksum in the SBOM: %+v, want %x", p.Checksums, sum)
		}
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.CreationInfo.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("SBOM header: %s created %s", doc.SPDXVersion, doc.CreationInfo.Created)
	}
	for _, m := range []string{"sluice", "go", "github.com/valyala/fasthttp", "github.com/tetratelabs/wazero", "github.com/hashicorp/hcl/v2"} {
		if found[m] == "" {
			t.Errorf("the SBOM does not name %s with a version", m)
		}
	}
}
