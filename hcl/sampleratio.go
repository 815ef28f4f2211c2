package hcl

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// decodeSampleRatio decodes a pipeline's `trace_sample_ratio`: the share of the traces this
// pipeline starts that are sampled, between 0 and 1.
func (d *decoder) decodeSampleRatio(a *hcl.Attribute, diags hcl.Diagnostics) (*float64, hcl.Diagnostics) {
	val, vd := a.Expr.Value(d.ctx)
	if vd.HasErrors() {
		return nil, append(diags, vd...)
	}
	if val.IsNull() || val.Type() != cty.Number {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
			Detail: "trace_sample_ratio must be a number between 0 and 1, such as 0.1.", Subject: a.Expr.Range().Ptr()})
	}
	r, _ := val.AsBigFloat().Float64()
	if r < 0 || r > 1 {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value",
			Detail: "trace_sample_ratio must be between 0 and 1.", Subject: a.Expr.Range().Ptr()})
	}
	return &r, diags
}
