package hcl

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
)

// add copies rg into r with prefix before each name.
func (r ranges) add(prefix string, rg ranges) {
	for k, v := range rg {
		r[prefix+k] = v
	}
}

// at returns where name was written, else fallback.
func (r ranges) at(name string, fallback hcl.Range) *hcl.Range {
	if rg, ok := r[name]; ok {
		return rg.Ptr()
	}
	return fallback.Ptr()
}

// lint checks what no single block can: settings that `sluice run` would reject only when
// binding (errors), and configuration that is dead or risky (warnings). It runs on a decoded
// configuration without errors.
func (c *Config) lint(file *hcl.File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	spec := c.Spec
	for _, l := range spec.EffectiveListeners() {
		if err := engine.CheckAdminAddress(l.Address, spec.Admin.Listen); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Admin API on the server's address",
				Detail:  capitalizeTrim(err.Error()) + "; give admin another port, or listen = \"\" to turn it off.",
				Subject: c.where.attrs.at("admin.listen", c.where.attrs["admin"])})
			break
		}
	}
	if spec.Admin.AllowInsecure && spec.Admin.AdminExposed() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Admin API open to the network without a token",
			Detail: fmt.Sprintf("Anyone who reaches %s can reload the configuration and read it (secrets redacted); allow_insecure = true accepts that. "+
				"Set token to require \"Authorization: Bearer <token>\".", spec.Admin.Listen),
			Subject: c.where.attrs.at("admin.allow_insecure", c.where.attrs["admin"])})
	}
	if len(spec.Pipelines) == 0 { // Load reports a file with blocks but no pipeline: this one is empty
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Empty configuration",
			Detail:  "The file declares no pipeline: the gateway would answer every request 404. Declare a pipeline block.",
			Subject: file.Body.MissingItemRange().Ptr()})
	}
	diags = append(diags, c.lintACME()...)
	routes := slices.ContainsFunc(spec.Pipelines, func(p engine.PipelineSpec) bool { return p.Route != nil })
	for i := range spec.Pipelines {
		p := &spec.Pipelines[i]
		where := c.where.pipeAttrs[i]
		if p.Match.RoutedOnly && !routes {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Unreachable pipeline",
				Detail: fmt.Sprintf("Pipeline %q is routed_only, so it serves only requests a route block routes again, and no pipeline ends in a route block.",
					p.Name),
				Subject: where.at("match.routed_only", c.where.pipelines[i])})
		}
		for j := range i {
			if q := &spec.Pipelines[j]; shadows(&q.Match, &p.Match) {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Unreachable pipeline",
					Detail: fmt.Sprintf("Pipeline %q can never serve a request: pipeline %q, declared earlier at %s, has the same path_prefix %q, path_regex and header/query/cookie tests and admits every host, method and listener it does, and among such pipelines the first declared wins (README \"Routing\").",
						p.Name, q.Name, c.where.pipelines[j], p.Match.PathPrefix),
					Subject: where.at("match", c.where.pipelines[i])})
				break
			}
		}
		if p.StripPrefix != "" && p.Route != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "strip_prefix never applies",
				Detail: fmt.Sprintf("Pipeline %q ends in route: the pipeline it routes to forwards the request, with that pipeline's strip_prefix. Move strip_prefix there.",
					p.Name),
				Subject: where.at("strip_prefix", c.where.pipelines[i])})
		} else if p.StripPrefix != "" && !canCarry(p.Match.PathPrefix, p.StripPrefix) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "strip_prefix never applies",
				Detail: fmt.Sprintf("Pipeline %q serves only paths that start with %q, and none of them starts with the segment %q: strip_prefix removes nothing. Make path_prefix start with it (such as path_prefix = %q).",
					p.Name, p.Match.PathPrefix, p.StripPrefix, p.StripPrefix+"/"),
				Subject: where.at("strip_prefix", c.where.pipelines[i])})
		}
	}
	return diags
}

// shadows reports whether a, declared before b, wins every request b admits (router.go's
// precedence): the same path_prefix, path_regex and header/query/cookie predicates (so the tie
// goes to declaration order), b's hosts all listed by a (an exact host beats a wildcard, which
// beats no host: a without hosts loses to b with some), and a admitting all of b's methods and
// listeners.
func shadows(a, b *engine.MatchConfig) bool {
	if a.PathPrefix != b.PathPrefix || a.PathRegex != b.PathRegex || !samePredicates(a, b) || a.RoutedOnly && !b.RoutedOnly {
		return false
	}
	if len(a.Hosts) == 0 != (len(b.Hosts) == 0) {
		return false
	}
	covers := func(outer, inner []string, fold bool) bool {
		if len(outer) == 0 {
			return true // any
		}
		if len(inner) == 0 {
			return false
		}
		for _, x := range inner {
			if !slices.ContainsFunc(outer, func(y string) bool { return x == y || fold && strings.EqualFold(x, y) }) {
				return false
			}
		}
		return true
	}
	return covers(a.Hosts, b.Hosts, true) && covers(a.Methods, b.Methods, false) && covers(a.Listeners, b.Listeners, false)
}

// samePredicates reports whether a and b test the same headers, query parameters and cookies
// the same way.
func samePredicates(a, b *engine.MatchConfig) bool {
	keys := func(m *engine.MatchConfig) []string {
		var out []string
		str := func(p *string) string {
			if p == nil {
				return "\x00"
			}
			return *p
		}
		for i, set := range [][]engine.ValueMatch{m.Headers, m.Query, m.Cookies, m.Keys} {
			for _, v := range set {
				name := v.Name
				if i == 0 {
					name = strings.ToLower(name)
				}
				present := "\x00"
				if v.Present != nil {
					present = fmt.Sprint(*v.Present)
				}
				out = append(out, fmt.Sprintf("%d %q %q %q %q %s", i, name, str(v.Exact), str(v.Prefix), str(v.Regex), present))
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(keys(a), keys(b))
}

// canCarry reports whether some path that starts with pathPrefix also starts with strip at a
// segment boundary (the way the balancer strips it: "/v1" strips from "/v1/x", not "/v10/x").
func canCarry(pathPrefix, strip string) bool {
	if strings.HasPrefix(strip, pathPrefix) {
		return true // longer paths under the prefix can carry strip
	}
	return strings.HasPrefix(pathPrefix, strip) && pathPrefix[len(strip)] == '/'
}
