package hcl

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-gateway/sluice/filters"
)

// FuzzLoad feeds arbitrary text to the loader: it must return diagnostics, never panic or hang.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.hcl")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`pipeline "p" { balancer { upstream = upstream.u } }`))
	reg := filters.Builtin()
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Load("fuzz.hcl", src, reg)
		if cfg == nil {
			t.Fatal("Load returned no Config")
		}
		if !diags.HasErrors() && cfg.Spec == nil {
			t.Fatal("no diagnostics but no spec")
		}
	})
}
