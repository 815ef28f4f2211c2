package main

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/sdk/sdktest"
	"github.com/tetratelabs/wazero"
)

var updateMirror = flag.Bool("update-sdk-mirror", false, "rewrite templates/sdk from the sources in sdk/")

// mirrorGlobs lists, per language, the SDK files a scaffolded project vendors (tests excluded).
var mirrorGlobs = map[string][]string{
	"go":             {"go.mod", "filter/*.go", "filtertest/*.go", "internal/abi/*.go"},
	"rust":           {"Cargo.toml", "src/*.rs"},
	"c":              {"sluice_filter.h", "sluice_fakehost.h", "sluice_fakehost.c"},
	"assemblyscript": {"assembly/*.ts", "testing/*.mjs"},
}

// sdkSources returns the mirror as it should be: embedded path → content.
func sdkSources(t *testing.T) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for lang, globs := range mirrorGlobs {
		base := filepath.Join(sdktest.Root(), "sdk", lang)
		for _, g := range globs {
			matches, err := filepath.Glob(filepath.Join(base, g))
			if err != nil || len(matches) == 0 {
				t.Fatalf("sdk/%s/%s matches nothing (%v)", lang, g, err)
			}
			for _, m := range matches {
				if strings.HasSuffix(m, "_test.go") {
					continue
				}
				b, err := os.ReadFile(m)
				if err != nil {
					t.Fatal(err)
				}
				rel, _ := filepath.Rel(base, m)
				want["templates/sdk/"+lang+"/"+filepath.ToSlash(rel)+".tmpl"] = b
			}
		}
	}
	return want
}

// TestSDKMirror checks that the embedded SDK copy equals sdk/. With -update-sdk-mirror (go
// generate ./cmd/sluice) it rewrites the copy instead.
func TestSDKMirror(t *testing.T) {
	want := sdkSources(t)
	if *updateMirror {
		if err := os.RemoveAll("templates/sdk"); err != nil {
			t.Fatal(err)
		}
		for p, b := range want {
			if err := writeFile(filepath.FromSlash(p), b); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have := map[string]bool{}
	_ = fs.WalkDir(templates, "templates/sdk", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			have[p] = true
		}
		return err
	})
	var stale []string
	for p, b := range want {
		got, err := templates.ReadFile(p)
		if err != nil || !bytes.Equal(got, b) {
			stale = append(stale, p)
		}
		delete(have, p)
	}
	for p := range have {
		stale = append(stale, p+" (no longer in sdk/)")
	}
	if len(stale) > 0 {
		sort.Strings(stale)
		t.Fatalf("the SDK copy embedded for new-filter differs from sdk/: run `go generate ./cmd/sluice`\n  %s", strings.Join(stale, "\n  "))
	}
}

func TestNewFilterRejects(t *testing.T) {
	dir := t.TempDir()
	if err := newFilter(filepath.Join(dir, "a"), "cobol", "a"); err == nil || !strings.Contains(err.Error(), "unknown --lang") {
		t.Errorf("unknown language: %v", err)
	}
	if err := newFilter(filepath.Join(dir, "b"), "go", "Bad_Name"); err == nil || !strings.Contains(err.Error(), "invalid name") {
		t.Errorf("bad name: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := newFilter(dir, "go", "ok"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty folder: %v", err)
	}
	if code := runNewFilter([]string{"--lang", "go"}); code != 2 {
		t.Errorf("no NAME: exit %d, want 2", code)
	}
}

// TestNewFilterProjects scaffolds a project in every language, then runs its own `make test` and
// `make` with the real toolchains and checks the module it built exports the ABI.
func TestNewFilterProjects(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four projects with their toolchains")
	}
	if missing := sdktest.MissingToolchains(); len(missing) > 0 {
		t.Fatalf("guest toolchains missing:\n  %s", strings.Join(missing, "\n  "))
	}
	for _, lang := range []string{"go", "rust", "c", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "my-filter")
			// Flags after the name, as users type them.
			if code := runNewFilter([]string{"my-filter", "--lang", lang, "--dir", dir}); code != 0 {
				t.Fatalf("new-filter exited %d", code)
			}
			// The AssemblyScript project installs its compiler with npm, as a user's would (npm's
			// cache makes repeated runs fast); the others need only what MissingToolchains checked.
			for _, target := range []string{"test", "build"} {
				cmd := exec.Command("make", target)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("make %s: %v\n%s", target, err, out)
				}
			}
			bin, err := os.ReadFile(filepath.Join(dir, "my-filter.wasm"))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			code, err := rt.CompileModule(ctx, bin)
			if err != nil {
				t.Fatal(err)
			}
			exports := code.ExportedFunctions()
			for _, name := range []string{"handle_request", "handle_response"} {
				if _, ok := exports[name]; !ok {
					t.Errorf("my-filter.wasm does not export %s", name)
				}
			}
			checkScaffoldConfig(t, filepath.Join(dir, "my-filter.wasm"))
			for _, f := range []string{"README.md", ".gitignore"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("missing %s: %v", f, err)
				}
			}
		})
	}
}
