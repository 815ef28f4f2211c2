package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
)

// TestSplitVariantBuilds: the "split" row's configuration loads and builds, so that the filter-cost
// table does not lose the row to a configuration that went stale.
func TestSplitVariantBuilds(t *testing.T) {
	dir := t.TempDir()
	src := sluiceVariant{name: "only-split", balancer: splitBalancer}.hcl(18160)
	cfg, diags := hcl.Load(filepath.Join(dir, "split.hcl"), []byte(src), filters.Builtin())
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
		t.Errorf("the split variant does not build:\n%s\n%s", b.String(), src)
	}
}
