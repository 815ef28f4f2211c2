package hcl

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/zclconf/go-cty/cty"
)

// decodeForwardClientCert decodes a pipeline's `forward_client_cert` attribute: the server's
// forward_client_cert mode for this pipeline's upstream ("sanitize", "sanitize_set",
// "forward_only" or "append_forward").
func (d *decoder) decodeForwardClientCert(a *hcl.Attribute, diags hcl.Diagnostics) (string, hcl.Diagnostics) {
	val, vd := a.Expr.Value(d.ctx)
	if vd.HasErrors() {
		return "", append(diags, vd...)
	}
	if val.IsNull() || val.Type() != cty.String {
		return "", append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
			Detail: `forward_client_cert must be a string such as "sanitize_set".`, Subject: a.Expr.Range().Ptr()})
	}
	s := val.AsString()
	if err := engine.ParseForwardClientCert(s); err != nil || s == "" {
		return "", append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value",
			Detail: `forward_client_cert must be "sanitize", "sanitize_set", "forward_only" or "append_forward".`, Subject: a.Expr.Range().Ptr()})
	}
	return s, diags
}
