// Package hcl reads Sluice's configuration language (see examples/reference/gateway.hcl): it parses HCL
// files, decodes every block with source ranges, reports every problem at once as HCL
// diagnostics, and builds the result into an engine.Gateway.
package hcl

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/sluice-gateway/sluice/engine"
)

// Config is a loaded configuration: the engine spec and where each part came from.
type Config struct {
	Spec   *engine.Spec
	Files  map[string]*hcl.File
	where  locations
	reg    *engine.Registry
	parser *hclparse.Parser
	// inputs are the files file() read; Build adds them to the gateway's Inputs.
	inputs []string
}

type locations struct {
	server    hcl.Range
	upstreams map[string]hcl.Range
	pipelines []hcl.Range
	filters   [][]hcl.Range
	// attrs holds where attributes were written, for checks across blocks (lint.go): the server
	// and admin blocks' ("server.listen"), each pipeline's ("match", "match.path_prefix",
	// "strip_prefix").
	attrs     ranges
	pipeAttrs []ranges
	// listeners holds where each listener block's attributes were written (listeners.go), and
	// under "" the block itself.
	listeners map[string]ranges
}

var rootSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "server"}, {Type: "admin"}, {Type: "telemetry"},
	{Type: "listener", LabelNames: []string{"name"}},
	{Type: "redis", LabelNames: []string{"name"}},
	{Type: "upstream", LabelNames: []string{"name"}},
	{Type: "pipeline", LabelNames: []string{"name"}},
}}

var pipelineSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "strip_prefix"}, {Name: "upgrades"}, {Name: "forward_client_cert"}, {Name: "trace_sample_ratio"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "match"}, {Type: "filter", LabelNames: []string{"kind"}}, {Type: "balancer"}, {Type: "route"},
	},
}

// LoadFile reads and decodes the configuration in path.
func LoadFile(path string, reg *engine.Registry) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read configuration", Detail: err.Error()}}
	}
	return Load(path, src, reg)
}

// Load decodes the configuration src, read from path (used for diagnostics and to resolve
// relative paths). Every problem is reported; the Config is usable only without errors.
func Load(path string, src []byte, reg *engine.Registry) (*Config, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	file, diags := parser.ParseHCL(src, path)
	cfg := &Config{Files: parser.Files(), reg: reg, parser: parser}
	if diags.HasErrors() {
		return cfg, diags
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	spec := &engine.Spec{Dir: dir, Redis: map[string]*engine.RedisConfig{}}
	spec.Server.SetDefaults()
	spec.Admin.SetDefaults()
	spec.Telemetry.SetDefaults()
	cfg.Spec = spec
	cfg.where.upstreams = map[string]hcl.Range{}
	cfg.where.attrs = ranges{}
	cfg.where.listeners = map[string]ranges{}

	content, cdiags := file.Body.Content(rootSchema)
	diags = append(diags, cdiags...)

	// First pass: the names that references may use.
	upstreams, redis := map[string]bool{}, map[string]bool{}
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		if len(b.Labels) == 0 {
			if prev, dup := seen[b.Type]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate %s block", b.Type),
					Detail:  fmt.Sprintf("Only one %q block is allowed; the first was at %s.", b.Type, prev),
					Subject: b.DefRange.Ptr(),
				})
			}
			seen[b.Type] = b.DefRange
			continue
		}
		key := b.Type + "." + b.Labels[0]
		if prev, dup := seen[key]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate %s %q", b.Type, b.Labels[0]),
				Detail:  fmt.Sprintf("A %s named %q was already declared at %s.", b.Type, b.Labels[0], prev),
				Subject: b.LabelRanges[0].Ptr(),
			})
			continue
		}
		seen[key] = b.DefRange
		switch b.Type {
		case "upstream":
			upstreams[b.Labels[0]] = true
		case "redis":
			redis[b.Labels[0]] = true
		}
	}
	d := &decoder{ctx: evalContext(dir, upstreams, redis, &cfg.inputs), upstreams: upstreams, redis: redis}

	done := map[string]bool{}
	for _, b := range content.Blocks {
		rg := ranges{}
		switch b.Type {
		case "server":
			if !done["server"] {
				cfg.where.server = b.DefRange
				diags = append(diags, d.decodeBody(b.Body, reflect.ValueOf(&spec.Server), "", b.DefRange, rg)...)
				cfg.where.attrs.add("server.", rg)
			}
		case "admin":
			if !done["admin"] {
				diags = append(diags, d.decodeBody(b.Body, reflect.ValueOf(&spec.Admin), "", b.DefRange, rg)...)
				cfg.where.attrs.add("admin.", rg)
				cfg.where.attrs["admin"] = b.DefRange
			}
		case "telemetry":
			if !done["telemetry"] {
				diags = append(diags, d.decodeBody(b.Body, reflect.ValueOf(&spec.Telemetry), "", b.DefRange, rg)...)
			}
		case "listener":
			if _, dup := cfg.where.listeners[b.Labels[0]]; dup {
				continue
			}
			diags = append(diags, d.decodeListener(b, spec, rg)...)
			rg[""] = b.DefRange
			cfg.where.listeners[b.Labels[0]] = rg
		case "redis":
			if _, dup := spec.Redis[b.Labels[0]]; dup {
				continue
			}
			rc := &engine.RedisConfig{}
			diags = append(diags, d.decodeBody(b.Body, reflect.ValueOf(rc), "", b.DefRange, rg)...)
			rc.Name = b.Labels[0]
			spec.Redis[rc.Name] = rc
		case "upstream":
			name := b.Labels[0]
			if _, dup := cfg.where.upstreams[name]; dup {
				continue
			}
			cfg.where.upstreams[name] = b.DefRange
			uk := reg.Upstream()
			if uk == nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Upstreams are not available",
					Detail: "This build of Sluice has no balancer registered.", Subject: b.DefRange.Ptr()})
				continue
			}
			uc := uk.NewConfig()
			diags = append(diags, d.decodeBody(b.Body, reflect.ValueOf(uc), "", b.DefRange, rg)...)
			spec.Upstreams = append(spec.Upstreams, engine.UpstreamSpec{Name: name, Config: uc})
		case "pipeline":
			ps, fr, pdiags := d.decodePipeline(b, reg)
			diags = append(diags, pdiags...)
			if ps != nil {
				spec.Pipelines = append(spec.Pipelines, *ps)
				cfg.where.pipelines = append(cfg.where.pipelines, b.DefRange)
				cfg.where.filters = append(cfg.where.filters, fr)
				cfg.where.pipeAttrs = append(cfg.where.pipeAttrs, d.pipeAttrs)
			}
		}
		if len(b.Labels) == 0 {
			done[b.Type] = true
		}
	}
	if len(content.Blocks) > 0 && len(spec.Pipelines) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No pipeline",
			Detail:  "Declare at least one pipeline block; without one every request is answered 404.",
			Subject: file.Body.MissingItemRange().Ptr()})
	}
	if !diags.HasErrors() {
		diags = append(diags, cfg.checkListeners()...)
	}
	if !diags.HasErrors() {
		diags = append(diags, cfg.lint(file)...)
	}
	return cfg, diags
}

func (d *decoder) decodePipeline(b *hcl.Block, reg *engine.Registry) (*engine.PipelineSpec, []hcl.Range, hcl.Diagnostics) {
	ps := &engine.PipelineSpec{Name: b.Labels[0]}
	content, diags := b.Body.Content(pipelineSchema)
	d.pipeAttrs = ranges{}
	if a, ok := content.Attributes["strip_prefix"]; ok {
		d.pipeAttrs["strip_prefix"] = a.Expr.Range()
		var s string
		if val, vd := a.Expr.Value(d.ctx); vd.HasErrors() {
			diags = append(diags, vd...)
		} else if val.Type().FriendlyName() != "string" || val.IsNull() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
				Detail: "strip_prefix must be a string such as \"/v1\".", Subject: a.Expr.Range().Ptr()})
		} else {
			s = val.AsString()
			if s != "" && (s[0] != '/' || s[len(s)-1] == '/' && len(s) > 1) {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value",
					Detail: "strip_prefix must start with \"/\" and not end with one, such as \"/v1\".", Subject: a.Expr.Range().Ptr()})
			}
		}
		ps.StripPrefix = s
	}
	if a, ok := content.Attributes["upgrades"]; ok {
		ps.Upgrades, diags = d.decodeUpgrades(a, diags)
	}
	if a, ok := content.Attributes["forward_client_cert"]; ok {
		d.pipeAttrs["forward_client_cert"] = a.Expr.Range()
		ps.ForwardClientCert, diags = d.decodeForwardClientCert(a, diags)
	}
	if a, ok := content.Attributes["trace_sample_ratio"]; ok {
		d.pipeAttrs["trace_sample_ratio"] = a.Expr.Range()
		ps.TraceSampleRatio, diags = d.decodeSampleRatio(a, diags)
	}
	var filterRanges []hcl.Range
	var balancers []*hcl.Block
	matched := false
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "match":
			if matched {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate match block",
					Detail: "A pipeline has at most one match block.", Subject: blk.DefRange.Ptr()})
				continue
			}
			matched = true
			mr := ranges{}
			diags = append(diags, d.decodeBody(blk.Body, reflect.ValueOf(&ps.Match), "", blk.DefRange, mr)...)
			d.pipeAttrs.add("match.", mr)
			d.pipeAttrs["match"] = blk.DefRange
		case "filter":
			kind := blk.Labels[0]
			k, ok := reg.Filter(kind)
			if !ok {
				detail := fmt.Sprintf("There is no filter kind %q.", kind)
				if s := suggest(kind, reg.Kinds()); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				} else {
					detail += fmt.Sprintf(" Known kinds: %v.", reg.Kinds())
				}
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
					Summary: fmt.Sprintf("Unknown filter kind %q", kind), Detail: detail, Subject: blk.LabelRanges[0].Ptr()})
				continue
			}
			fc := k.NewConfig()
			fa := ranges{}
			diags = append(diags, d.decodeBody(blk.Body, reflect.ValueOf(fc), "", blk.DefRange, fa)...)
			// Kept so that a build error naming an attribute (a file that does not parse) points at it.
			d.pipeAttrs.add(filterAttrPrefix(len(ps.Filters)), fa)
			ps.Filters = append(ps.Filters, engine.FilterSpec{Kind: kind, Name: configName(fc), Config: fc})
			filterRanges = append(filterRanges, blk.DefRange)
		case "balancer", "route": // route.go: route ends a pipeline instead of a balancer
			balancers = append(balancers, blk)
		}
	}
	if ps.Match.PathPrefix == "" {
		ps.Match.PathPrefix = "/"
	}
	switch len(balancers) {
	case 0:
		if ps.EndsInAnswer() { // its last filter (respond, redirect) answers every request
			break
		}
		detail := fmt.Sprintf("Pipeline %q must end in a balancer block: balancer { upstream = upstream.NAME }, or in a route block that routes the request again: route {}, or have a filter that answers every request (respond, redirect) last.", ps.Name)
		if n := len(ps.Filters); n > 0 {
			detail += fmt.Sprintf(" Its last filter, %q, lets requests through.", ps.Filters[n-1].Kind)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing balancer block",
			Detail: detail, Subject: b.DefRange.Ptr()})
	default:
		for _, extra := range balancers[1:] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate %s block", extra.Type),
				Detail:  fmt.Sprintf("A pipeline ends in exactly one balancer or route block; the first was at %s.", balancers[0].DefRange),
				Subject: extra.DefRange.Ptr()})
		}
		if balancers[0].Type == "route" {
			ps.Route = &engine.RouteConfig{}
			diags = append(diags, d.decodeBody(balancers[0].Body, reflect.ValueOf(ps.Route), "", balancers[0].DefRange, ranges{})...)
			break
		}
		var bc engine.BalancerSpec
		diags = append(diags, d.decodeBody(balancers[0].Body, reflect.ValueOf(&bc), "", balancers[0].DefRange, ranges{})...)
		ps.Upstream = string(bc.Upstream)
		if len(bc.Split) > 0 {
			ps.Upstream = string(bc.Split[0].Upstream)
		}
		if len(bc.Split) > 0 || len(bc.RouteHeader) > 0 || len(bc.RouteCookie) > 0 || bc.Timeouts != nil || bc.Retry != nil || bc.Mirror != nil {
			ps.Balancer = &bc
		}
	}
	return ps, filterRanges, diags
}

// filterAttr is the key under which a pipeline's ranges hold its filter i's attribute name.
// configName returns the value of a config struct's `name` attribute, if it has one.
func configName(cfg any) string {
	v := reflect.ValueOf(cfg).Elem()
	for _, f := range structFields(v.Type()) {
		if f.name == "name" && v.Field(f.index).Kind() == reflect.String {
			return v.Field(f.index).String()
		}
	}
	return ""
}

// filterAttrPrefix prefixes the attribute paths of a pipeline's filter i in its pipeAttrs.
func filterAttrPrefix(i int) string { return "filter." + strconv.Itoa(i) + "." }

// Build builds the configuration. Build failures become diagnostics on the block that failed.
func (c *Config) Build(opt engine.BuildOptions) (*engine.Gateway, hcl.Diagnostics) {
	gw, errs := engine.Build(c.Spec, c.reg, opt)
	if gw != nil {
		gw.Inputs = append(gw.Inputs, c.inputs...)
	}
	var diags hcl.Diagnostics
	if gw != nil {
		for _, w := range gw.Warnings {
			diags = append(diags, c.listenerDiag(w, hcl.DiagWarning))
		}
	}
	for _, e := range errs {
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Detail: capitalizeTrim(e.Err.Error()) + "."}
		switch {
		case e.Listener != "":
			d = c.listenerDiag(e, hcl.DiagError)
		case e.Server:
			d.Summary = "Invalid server block"
			d.Subject = c.where.server.Ptr()
		case e.Upstream != "":
			d.Summary = fmt.Sprintf("Cannot build upstream %q", e.Upstream)
			if r, ok := c.where.upstreams[e.Upstream]; ok {
				d.Subject = r.Ptr()
			}
		case e.Filter >= 0:
			d.Summary = fmt.Sprintf("Cannot build filter %q", c.Spec.Pipelines[e.Pipeline].Filters[e.Filter].Kind)
			d.Subject = c.where.filters[e.Pipeline][e.Filter].Ptr()
			if fe, ok := engine.AsFieldError(e.Err); ok {
				d.Subject = c.where.pipeAttrs[e.Pipeline].at(filterAttrPrefix(e.Filter)+fe.Field, c.where.filters[e.Pipeline][e.Filter])
			}
		default:
			d.Summary = fmt.Sprintf("Cannot build pipeline %q", c.Spec.Pipelines[e.Pipeline].Name)
			d.Subject = c.where.pipelines[e.Pipeline].Ptr()
		}
		diags = append(diags, d)
	}
	return gw, diags
}
