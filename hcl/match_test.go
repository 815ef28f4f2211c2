package hcl

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
)

// TestMatchDecodes reads every kind of match predicate and a route block.
func TestMatchDecodes(t *testing.T) {
	cfg, diags := Load("m.hcl", []byte(`
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  match {
    path_prefix = "/api/"
    path_regex  = "^/api/v[0-9]+/"
    header "X-Canary" { exact = "1" }
    header "authorization" { present = false }
    query "debug" { prefix = "t" }
    cookie "ab" { regex = "^b" }
    routed_only = true
  }
  balancer { upstream = upstream.u }
}
pipeline "entry" {
  route { max_hops = 2 }
}
`), filters.Builtin())
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	m := cfg.Spec.Pipelines[0].Match
	if m.PathRegex == "" || len(m.Headers) != 2 || m.Headers[0].Name != "X-Canary" || *m.Headers[0].Exact != "1" ||
		*m.Headers[1].Present || m.Query[0].Name != "debug" || *m.Cookies[0].Regex != "^b" || !m.RoutedOnly {
		t.Errorf("match decoded as %+v", m)
	}
	if r := cfg.Spec.Pipelines[1].Route; r == nil || r.MaxHops != 2 {
		t.Errorf("route decoded as %+v", r)
	}
	gw, bd := cfg.Build(engine.BuildOptions{Validating: true})
	if bd.HasErrors() {
		t.Fatal(bd.Error())
	}
	gw.Close()
}

// TestUnreachablePipelineWarnings: validate warns about a pipeline another always beats under
// the router's precedence, and not about one that wins some requests.
func TestUnreachablePipelineWarnings(t *testing.T) {
	const up = "upstream \"u\" {\n  target { address = \"127.0.0.1:9001\" }\n}\n"
	pipe := func(name, match string) string {
		return "pipeline \"" + name + "\" {\n  match {\n" + match + "\n  }\n  balancer { upstream = upstream.u }\n}\n"
	}
	for _, tc := range []struct {
		name, a, b string
		warn       bool
	}{
		{"same prefix, no predicates", `path_prefix = "/x/"`, `path_prefix = "/x/"`, true},
		{"same predicates", "path_prefix = \"/x/\"\nheader \"x-a\" { exact = \"1\" }", "path_prefix = \"/x/\"\nheader \"X-A\" { exact = \"1\" }", true},
		{"b has a predicate", `path_prefix = "/x/"`, "path_prefix = \"/x/\"\nheader \"x-a\" { exact = \"1\" }", false},
		{"b has a path regex", `path_prefix = "/x/"`, "path_prefix = \"/x/\"\npath_regex = \"^/x/1\"", false},
		{"b is longer", `path_prefix = "/x/"`, `path_prefix = "/x/y/"`, false},
		{"b lists a host", `path_prefix = "/x/"`, "path_prefix = \"/x/\"\nhosts = [\"a.com\"]", false},
		{"a lists b's host", "hosts = [\"a.com\", \"b.com\"]", "hosts = [\"a.com\"]", true},
		{"a is routed only", "routed_only = true", "", false},
		{"b is routed only, nothing routes", "", "routed_only = true", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Load("w.hcl", []byte(up+pipe("a", tc.a)+pipe("b", tc.b)), filters.Builtin())
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			got := false
			for _, d := range diags {
				if d.Severity == hcl.DiagWarning && d.Summary == "Unreachable pipeline" && strings.Contains(d.Detail, `Pipeline "b"`) {
					got = true
				}
			}
			if got != tc.warn {
				t.Errorf("warning = %v, want %v (%v)", got, tc.warn, diags)
			}
		})
	}
}

// TestRouteStripPrefixWarning: strip_prefix on a pipeline that ends in route is dead.
func TestRouteStripPrefixWarning(t *testing.T) {
	_, diags := Load("r.hcl", []byte(`
pipeline "entry" {
  match { path_prefix = "/api/" }
  strip_prefix = "/api"
  route {}
}
`), filters.Builtin())
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning && d.Summary == "strip_prefix never applies" && d.Subject.Start.Line == 4 {
			return
		}
	}
	t.Errorf("no warning at strip_prefix: %v", diags)
}
