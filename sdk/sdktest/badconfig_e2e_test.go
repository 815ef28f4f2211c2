package sdktest_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/sdk/sdktest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
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

// Rust, C and AssemblyScript guests read their configuration on the first request: a bad one
// traps there, the gateway answers 500 (on_error = deny) and keeps serving other requests.
func TestBadConfigTrapsOnFirstRequest(t *testing.T) {
	bad := `{ keys = { alpha = 1 } }` // consumer names must be strings: the Rust apikey panics
	gw := gatewaytest.Start(t, pipelines(echoUpstream(t),
		[2]string{"bad", wasmFilter(sdktest.Wasm(t, "rust", "apikey"), bad)},
		[2]string{"good", wasmFilter(sdktest.Wasm(t, "rust", "apikey"), apikeyConfig)}))
	for i := 0; i < 3; i++ { // each trap discards the instance; the replacement traps again
		if r := do(t, "GET", gw.URL+"/bad/", "", "X-API-Key", "alpha"); r.status != 500 || r.seen != nil {
			t.Fatalf("bad config: status %d, upstream reached %v; want 500", r.status, r.seen != nil)
		}
	}
	if r := do(t, "GET", gw.URL+"/good/", "", "X-API-Key", "alpha"); r.status != 200 || r.seen == nil {
		t.Errorf("after the traps, a good filter answers %d", r.status)
	}
}
