package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
)

// TestEdgeVariantsBuild: the cors, ip_filter and key_auth rows' configurations load and build
// with the files edgeComponents writes, so that the filter-cost table does not lose the rows.
func TestEdgeVariantsBuild(t *testing.T) {
	dir := t.TempDir()
	parts, err := edgeComponents(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkVariantsBuild(t, dir, parts)
}

// TestEdgeAuthVariantsBuild: the same for the basic_auth and forward_auth rows.
func TestEdgeAuthVariantsBuild(t *testing.T) {
	dir := t.TempDir()
	parts, err := edgeAuthComponents(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("%d components", len(parts))
	}
	checkVariantsBuild(t, dir, parts)
}

// checkVariantsBuild loads and builds each component alone, as the filter-cost rows run it.
func checkVariantsBuild(t *testing.T, dir string, parts []component) {
	t.Helper()
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
