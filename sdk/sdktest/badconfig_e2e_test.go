package sdktest_test

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/sdk/sdktest"
)

// A Go guest reads its configuration in init, which runs in _initialize when the gateway loads
// the module: a bad configuration fails the build with the guest's own message.
func TestBadConfigFailsLoadInGo(t *testing.T) {
	dir := t.TempDir()
	src := pipelines("127.0.0.1:1", [2]string{"go", wasmFilter(sdktest.Wasm(t, "go", "apikey"), `{ keys = ["not", "an", "object"] }`)})
	cfg, diags := hcl.Load(filepath.Join(dir, "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		t.Fatalf("config does not load: %v", diags)
	}
	var logs bytes.Buffer
	gw, diags := cfg.Build(engine.BuildOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !diags.HasErrors() {
		_ = gw.Close()
		t.Fatal("a Go guest with a bad config was accepted")
	}
	var b bytes.Buffer
	_ = cfg.WriteDiagnostics(&b, diags)
	// The diagnostic names the failing init and quotes the panic message the guest wrote to its
	// stderr (which the gateway also logs).
	if !strings.Contains(b.String(), "main.init") || !strings.Contains(b.String(), "panic: apikey: config") ||
		!strings.Contains(logs.String(), "apikey: config") {
		t.Errorf("the failure does not point at the guest's init and message:\n%s\nlogs:\n%s", b.String(), logs.String())
	}
}

// Rust, C (freestanding and against wasi-libc) and AssemblyScript guests read their
// configuration when the instance starts (export_filter!'s _initialize, SLUICE_START, top-level
// code): a bad one fails the build, and the diagnostic quotes the message the guest logged
// before trapping. `sluice validate` reports it the same way.
func TestBadConfigFailsLoad(t *testing.T) {
	bad := `{ keys = { sk-live-7f3a = 1 } }` // consumer names must be strings; the key is a credential
	for _, b := range referenceBuilds {
		if b.lang == "go" {
			continue // TestBadConfigFailsLoadInGo
		}
		t.Run(b.name, func(t *testing.T) {
			for _, validating := range []bool{true, false} {
				src := pipelines("127.0.0.1:1", [2]string{"bad", wasmFilter(sdktest.Wasm(t, b.lang, b.file), bad)})
				cfg, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
				if diags.HasErrors() {
					t.Fatalf("config does not load: %v", diags)
				}
				gw, diags := cfg.Build(engine.BuildOptions{Validating: validating, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if !diags.HasErrors() {
					_ = gw.Close()
					t.Fatalf("validating=%v: a bad config was accepted", validating)
				}
				var out bytes.Buffer
				_ = cfg.WriteDiagnostics(&out, diags)
				if !strings.Contains(out.String(), "consumer names must be strings") {
					t.Errorf("validating=%v: the diagnostic does not quote the guest:\n%s", validating, out.String())
				}
				if strings.Contains(out.String(), "sk-live-7f3a") {
					t.Errorf("validating=%v: the diagnostic shows the API key:\n%s", validating, out.String())
				}
			}
		})
	}
}
