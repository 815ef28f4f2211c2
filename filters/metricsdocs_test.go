package filters_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsDocumented checks that README.md's metrics table lists every metric the gateway
// declares (a quoted "sluice_…" name in a non-test Go file), and nothing else.
func TestMetricsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(sluice_[a-z0-9_]+)` \\|").FindAllSubmatch(readme, -1) {
		documented[string(m[1])] = true
	}
	declared := map[string]bool{}
	name := regexp.MustCompile(`"(sluice_[a-z0-9_]+)"`)
	for _, dir := range []string{"../engine", "../filters", "../cmd"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range name.FindAllSubmatch(src, -1) {
				// A name prefix ("sluice_wasm_", matched by the dashboard) or the dashboard's
				// session cookie is not a metric.
				if n := string(m[1]); !strings.HasSuffix(n, "_") && n != "sluice_admin" {
					declared[n] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(declared) < 10 {
		t.Fatalf("found only %d metric names: the scan is broken", len(declared))
	}
	for n := range declared {
		if !documented[n] {
			t.Errorf("metric %s is not in README.md's metrics table", n)
		}
	}
	for n := range documented {
		if !declared[n] {
			t.Errorf("README.md's metrics table lists %s, which nothing declares", n)
		}
	}
}
