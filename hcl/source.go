package hcl

import (
	"fmt"
	"path/filepath"
	"reflect"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// LoadSource reads a bootstrap file: one whose only block is `config_source "KIND" { … }`, telling
// `sluice run` where its configuration comes from (etcd). kinds makes the config struct of each
// known KIND. found is false when src has no config_source block: it is a gateway configuration,
// for Load. The returned Config only carries the files, for WriteDiagnostics.
func LoadSource(path string, src []byte, kinds map[string]func() any) (cfg any, kind string, found bool, c *Config, diags hcl.Diagnostics) {
	parser := hclparse.NewParser()
	file, diags := parser.ParseHCL(src, path)
	c = &Config{Files: parser.Files(), parser: parser}
	if diags.HasErrors() {
		return nil, "", false, c, diags
	}
	probe, _, _ := file.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "config_source", LabelNames: []string{"kind"}}}})
	if len(probe.Blocks) == 0 {
		return nil, "", false, c, nil
	}
	// A bootstrap file holds the source alone: the configuration itself comes from the source.
	content, cdiags := file.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "config_source", LabelNames: []string{"kind"}}}})
	for i := range cdiags {
		if cdiags[i].Summary == "Unsupported block type" {
			cdiags[i].Detail = "A file with a config_source block is a bootstrap file: the gateway's configuration comes from the source (`sluice push` writes it there), so this file holds the config_source block alone."
		}
	}
	diags = append(diags, cdiags...)
	if len(content.Blocks) > 1 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate config_source block",
			Detail: "A bootstrap file names one configuration source.", Subject: content.Blocks[1].DefRange.Ptr()})
	}
	b := content.Blocks[0]
	kind = b.Labels[0]
	mk, ok := kinds[kind]
	if !ok {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Unknown configuration source %q", kind),
			Detail: "The configuration sources are: \"etcd\".", Subject: b.LabelRanges[0].Ptr()})
		return nil, kind, true, c, diags
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	var read []string
	d := &decoder{ctx: evalContext(dir, nil, nil, &read)}
	cfg = mk()
	diags = append(diags, d.decodeBody(b.Body, reflect.ValueOf(cfg), "", b.DefRange, ranges{})...)
	return cfg, kind, true, c, diags
}
