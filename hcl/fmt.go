package hcl

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical HCL style. Source that does not parse is an error with
// diagnostics, so fmt never rewrites a file it cannot read.
func Format(filename string, src []byte) ([]byte, hcl.Diagnostics) {
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// IsFormatted reports whether src is already in canonical style.
func IsFormatted(filename string, src []byte) (bool, error) {
	out, diags := Format(filename, src)
	if diags.HasErrors() {
		return false, fmt.Errorf("%s: %w", filename, diags)
	}
	return bytes.Equal(out, src), nil
}
