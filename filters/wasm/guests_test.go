package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Test guests are built from the sources in testdata once per test binary: WAT files with
// wat2wasm (Debian's wabt), C files as WASI commands with clang and wasi-libc, and the Go reactor
// with GOOS=wasip1. Built files are kept in a
// temporary folder, named by the hash of their source, and never committed.
// SLUICE_WASM_GUEST_DIR names a folder to keep them in across test binaries instead: a guest
// found there is not built again, so a benchmark run under valgrind (whose callgrind does not
// survive the SIGCHLD of a build) starts no process once the folder holds its guests.

var (
	guestDir  string
	guestMu   sync.Mutex
	guestPath = map[string]string{}
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("SLUICE_WASM_GUEST_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			panic(err)
		}
		guestDir = dir
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "sluice-wasm-guests-")
	if err != nil {
		panic(err)
	}
	guestDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// built reports whether out was built already (kept in SLUICE_WASM_GUEST_DIR).
func built(out string) bool {
	st, err := os.Stat(out)
	return err == nil && st.Size() > 0
}

// Guest returns the path of a compiled test guest: "goguest" (testdata/goguest, a Go wasip1
// reactor) or the base name of a testdata/*.c or testdata/*.wat file.
func Guest(t testing.TB, name string) string {
	t.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if p, ok := guestPath[name]; ok {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	testdata := filepath.Join(filepath.Dir(file), "testdata")
	var p string
	var err error
	if name == "goguest" {
		p, err = buildGo(filepath.Join(testdata, "goguest"))
		if err == nil {
			err = keepCompiled(p)
		}
	} else if c := filepath.Join(testdata, name+".c"); fileExists(c) {
		p, err = buildC(c)
	} else {
		p, err = buildWAT(filepath.Join(testdata, name+".wat"))
	}
	if err != nil {
		t.Fatalf("building test guest %s: %v", name, err)
	}
	guestPath[name] = p
	return p
}

func buildWAT(src string) (string, error) {
	text, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	out := filepath.Join(guestDir, hashOf(text)+".wasm")
	if built(out) {
		return out, nil
	}
	cmd := exec.Command("wat2wasm", src, "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, b}
	}
	return out, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// buildC builds a C guest as a WASI command (wasi-libc's _start runs main).
func buildC(src string) (string, error) {
	text, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	out := filepath.Join(guestDir, hashOf(text)+".wasm")
	if built(out) {
		return out, nil
	}
	cmd := exec.Command("clang", "--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, b}
	}
	return out, nil
}

func buildGo(dir string) (string, error) {
	var all []byte
	for _, f := range []string{"go.mod", "abi.go", "main.go"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		all = append(all, b...)
	}
	out := filepath.Join(guestDir, hashOf(all)+".wasm")
	if built(out) {
		return out, nil
	}
	// go test puts its own toolchain's bin folder first on PATH: this "go" is the one testing us.
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, b}
	}
	return out, nil
}

// keepCompiled holds a reference to the Go guest's compiled code (as a live filter would) for
// the whole test binary, so tests that build and close filters do not each pay for compiling
// it again. Filters with a timeout compile separately (the code differs) and are not kept.
func keepCompiled(path string) error {
	bin, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// Filters run the guest instrumented (with the default call depth limit): keep that code.
	bin, fallback, err := instrumentModule(bin, defaultMaxCallDepth)
	if err != nil || fallback {
		return fmt.Errorf("instrumenting: %w", err)
	}
	ctx := context.Background()
	_, err = newRuntime(ctx, defaultMemLimit, false).CompileModule(ctx, bin)
	return err
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + ": " + string(bytes.TrimSpace(e.out)) }

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}
