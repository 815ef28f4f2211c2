package filters_test

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
)

// TestReferenceConfigComplete checks that examples/reference/gateway.hcl, the configuration
// language's reference, shows every attribute and block of the top-level blocks, the upstream
// block and every filter kind, as read from the config structs' hcl tags: set, or named in a
// comment inside its block (`# or: jwks_file = "…"`). Whether what it sets is valid is
// TestReferenceConfigValidates' concern (cmd/sluice).
func TestReferenceConfigComplete(t *testing.T) {
	const path = "../examples/reference/gateway.hcl"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	lines := strings.Split(string(src), "\n")
	shown := map[string]map[string]bool{} // block ("server", `filter "jwt"`) → attribute paths
	var walk func(b *hclsyntax.Body, key, prefix string)
	walk = func(b *hclsyntax.Body, key, prefix string) {
		if shown[key] == nil {
			shown[key] = map[string]bool{}
		}
		for name := range b.Attributes {
			shown[key][prefix+name] = true
		}
		inChild := map[int]bool{}
		for _, blk := range b.Blocks {
			shown[key][prefix+blk.Type] = true
			walk(blk.Body, key, prefix+blk.Type+".")
			for l := blk.Range().Start.Line; l <= blk.Range().End.Line; l++ {
				inChild[l] = true
			}
		}
		for l := b.SrcRange.Start.Line; l <= b.SrcRange.End.Line && l <= len(lines); l++ {
			if inChild[l] {
				continue
			}
			if _, comment, ok := strings.Cut(lines[l-1], "#"); ok {
				for _, m := range commentedAttr.FindAllStringSubmatch(comment, -1) {
					shown[key][prefix+m[1]] = true
				}
			}
		}
	}
	for _, blk := range f.Body.(*hclsyntax.Body).Blocks {
		if blk.Type != "pipeline" {
			walk(blk.Body, blk.Type, "")
			continue
		}
		for _, inner := range blk.Body.Blocks {
			key := inner.Type
			if inner.Type == "filter" && len(inner.Labels) == 1 {
				key = `filter "` + inner.Labels[0] + `"`
			}
			walk(inner.Body, key, "")
		}
	}

	r := filters.Builtin()
	want := map[string]any{
		"server":    new(engine.ServerConfig),
		"listener":  new(engine.ListenerConfig),
		"admin":     new(engine.AdminConfig),
		"telemetry": new(engine.TelemetryConfig),
		"redis":     new(engine.RedisConfig),
		"match":     new(engine.MatchConfig),
		"upstream":  r.Upstream().NewConfig(),
	}
	for _, kind := range r.Kinds() {
		k, _ := r.Filter(kind)
		want[`filter "`+kind+`"`] = k.NewConfig()
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		inCode := map[string]bool{}
		hclNames(reflect.TypeOf(want[key]), "", inCode)
		if key == "server" {
			// The server block's tls block is the same as a listener's, shown there in full (the
			// reference has listener blocks, with which server.tls is not allowed).
			for n := range inCode {
				if n == "tls" || strings.HasPrefix(n, "tls.") {
					delete(inCode, n)
				}
			}
		}
		if key == "match" {
			// A key block names a route key that a native filter declares (engine.NewRouteKey);
			// no built-in filter declares one, so the reference can only name the block.
			for n := range inCode {
				if strings.HasPrefix(n, "key.") {
					delete(inCode, n)
				}
			}
		}
		var missing []string
		for n := range inCode {
			if !shown[key][n] {
				missing = append(missing, n)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s: the %s block does not show %s (set it, or name it in a comment inside the block: # %s = …)",
				path, key, strings.Join(missing, ", "), missing[0])
		}
	}
}

// commentedAttr finds `name = ` in a comment.
var commentedAttr = regexp.MustCompile(`\b([a-z_]+)\s*=\s*\S`)
