package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
)

// TestEdgeAuthVariantsBuild: the basic_auth and forward_auth rows' configurations load and build,
// so that the filter-cost table does not lose them to a configuration that went stale.
func TestEdgeAuthVariantsBuild(t *testing.T) {
	dir := t.TempDir()
	parts, err := edgeAuthComponents(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("%d components", len(parts))
	}
	for _, c := range parts {
		src := sluiceVariant{name: "only-" + c.name, parts: []component{c}}.hcl(18160)
		cfg, diags := hcl.Load(filepath.Join(dir, c.name+".hcl"), []byte(src), filters.Builtin())
		if !diags.HasErrors() {
			g, bd := cfg.Build(engine.BuildOptions{Validating: true})
			if g != nil {
				g.Close()
			}
			diags = append(diags, bd...)
		}
		if diags.HasErrors() {
			var b strings.Builder
			_ = cfg.WriteDiagnostics(&b, diags)
			t.Errorf("the %s variant does not build:\n%s\n%s", c.name, b.String(), src)
		}
	}
}
