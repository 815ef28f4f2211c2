package hcl

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
)

// decodeListener decodes a `listener "NAME"` block into spec.Listeners.
func (d *decoder) decodeListener(b *hcl.Block, spec *engine.Spec, rg ranges) hcl.Diagnostics {
	lc := &engine.ListenerConfig{}
	diags := d.decodeBody(b.Body, reflect.ValueOf(lc), "", b.DefRange, rg)
	lc.Name = b.Labels[0]
	if lc.Name == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid listener name",
			Detail: "A listener needs a name, such as listener \"public\".", Subject: b.LabelRanges[0].Ptr()})
	}
	spec.Listeners = append(spec.Listeners, *lc)
	return diags
}

// checkListeners checks the listeners against the rest of the configuration: the server
// block's listen and tls belong to listener blocks once there are some, and the listeners a
// pipeline's match block names must exist.
func (c *Config) checkListeners() hcl.Diagnostics {
	var diags hcl.Diagnostics
	spec := c.Spec
	if len(spec.Listeners) > 0 {
		if r, ok := c.where.attrs["server.listen"]; ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "server.listen with listener blocks",
				Detail:  fmt.Sprintf("With listener blocks, the addresses are theirs: move listen = %q into a listener block as address = %q.", spec.Server.Listen, spec.Server.Listen),
				Subject: r.Ptr()})
		}
		if r, ok := c.where.attrs["server.protocols"]; ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "server.protocols with listener blocks",
				Detail:  "With listener blocks, protocols are per listener: move protocols into the listener blocks.",
				Subject: r.Ptr()})
		}
		if r, ok := c.where.attrs["server.tls"]; ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "server.tls with listener blocks",
				Detail:  "With listener blocks, TLS is per listener: move this tls block into the listener block that serves HTTPS.",
				Subject: r.Ptr()})
		}
	}
	names := c.listenerNames()
	for i := range spec.Pipelines {
		p := &spec.Pipelines[i]
		for _, n := range p.Match.Listeners {
			if slices.Contains(names, n) {
				continue
			}
			detail := fmt.Sprintf("Pipeline %q names listener %q, which is not declared.", p.Name, n)
			if s := suggest(n, names); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			} else {
				detail += fmt.Sprintf(" Listeners: %s.", quoteAll(names))
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown listener", Detail: detail,
				Subject: c.where.pipeAttrs[i].at("match.listeners", c.where.pipelines[i])})
		}
	}
	for _, l := range spec.Listeners {
		if l.RedirectToHTTPS || servesAny(spec, l.Name) {
			continue
		}
		rg := c.where.listeners[l.Name]
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Listener without pipelines",
			Detail:  fmt.Sprintf("Every pipeline is restricted to other listeners (match { listeners = [...] }): listener %q would answer every request 404.", l.Name),
			Subject: rg[""].Ptr()})
	}
	return diags
}

// servesAny reports whether some pipeline serves requests that come through the listener.
func servesAny(spec *engine.Spec, listener string) bool {
	for i := range spec.Pipelines {
		ls := spec.Pipelines[i].Match.Listeners
		if len(ls) == 0 || slices.Contains(ls, listener) {
			return true
		}
	}
	return false
}

func (c *Config) listenerNames() []string {
	var names []string
	for _, l := range c.Spec.EffectiveListeners() {
		names = append(names, l.Name)
	}
	return names
}

func quoteAll(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", n)
	}
	return out
}

// listenerDiag turns a build problem of a listener (the implicit one's: of the server block)
// into a diagnostic at the attribute it names.
func (c *Config) listenerDiag(e *engine.BuildError, sev hcl.DiagnosticSeverity) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: sev, Detail: capitalizeTrim(e.Err.Error()) + "."}
	if e.Server {
		d.Summary = "Invalid server block"
		if sev == hcl.DiagWarning {
			d.Summary = "Server block warning"
		}
		d.Subject = c.where.attrs.at("server."+e.Field, c.where.server)
		return d
	}
	d.Summary = fmt.Sprintf("Invalid listener %q", e.Listener)
	if sev == hcl.DiagWarning {
		d.Summary = fmt.Sprintf("Warning on listener %q", e.Listener)
	}
	rg := c.where.listeners[e.Listener]
	d.Subject = rg.at(e.Field, rg[""])
	return d
}
