// Package sdktest builds the example filters of every guest SDK from source with the real
// toolchains (through `make -C sdk examples`) so tests can load them into a real gateway. A
// missing toolchain fails the test with the Debian or npm package that provides it.
package sdktest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Root is the repository's root folder.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Examples builds every example (once per test binary; make skips what is up to date) and
// returns the folder holding <lang>/<name>.wasm.
func Examples(t testing.TB) string {
	t.Helper()
	if missing := MissingToolchains(); len(missing) > 0 {
		t.Fatalf("guest toolchains missing:\n  %s", strings.Join(missing, "\n  "))
	}
	buildOnce.Do(func() {
		buildDir = filepath.Join(Root(), "examples", "filters", "build")
		cmd := exec.Command("make", "-C", filepath.Join(Root(), "sdk"), "examples", "OUT="+buildDir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("make -C sdk examples: %w\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// Wasm returns the path of a built example, e.g. Wasm(t, "rust", "apikey").
func Wasm(t testing.TB, lang, name string) string {
	t.Helper()
	p := filepath.Join(Examples(t), lang, name+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("example %s/%s was not built: %v", lang, name, err)
	}
	return p
}

// MissingToolchains lists, one line each, the tools the examples need that are not installed,
// with the command that installs them.
func MissingToolchains() []string {
	var missing []string
	have := func(name string) bool { _, err := exec.LookPath(name); return err == nil }
	exists := func(glob string) bool { m, _ := filepath.Glob(glob); return len(m) > 0 }
	if !have("make") {
		missing = append(missing, "make: apt-get install make")
	}
	rustc := "/usr/bin/rustc"
	if _, err := os.Stat(rustc); err != nil {
		rustc = "rustc"
	}
	if !have(rustc) {
		missing = append(missing, "rustc: apt-get install rustc libstd-rust-dev-wasm32")
	} else if out, err := exec.Command(rustc, "--print", "target-libdir", "--target", "wasm32-unknown-unknown").Output(); err != nil || !exists(strings.TrimSpace(string(out))+"/libstd-*") {
		missing = append(missing, "Rust std for wasm32-unknown-unknown: apt-get install libstd-rust-dev-wasm32")
	}
	if !have("clang") {
		missing = append(missing, "clang: apt-get install clang")
	}
	if !have("wasm-ld") {
		missing = append(missing, "wasm-ld: apt-get install lld")
	}
	if !exists("/usr/lib/wasm32-wasi/libc.a") {
		missing = append(missing, "wasi-libc: apt-get install wasi-libc")
	}
	if !exists("/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a") {
		missing = append(missing, "compiler-rt for wasm32-wasi: apt-get install libclang-rt-14-dev-wasm32 (the version of your clang)")
	}
	if !have("wat2wasm") {
		missing = append(missing, "wat2wasm: apt-get install wabt")
	}
	if !have("node") || !have("npm") {
		missing = append(missing, "node and npm (assemblyscript is then installed locally by make): apt-get install nodejs npm")
	}
	return missing
}
