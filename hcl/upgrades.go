package hcl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// decodeUpgrades decodes a pipeline's `upgrades` attribute: the protocols a request may switch
// to with Upgrade (["websocket"] when absent, [] for none). Each must be a token such as
// "websocket" or "h2c", without a version.
func (d *decoder) decodeUpgrades(a *hcl.Attribute, diags hcl.Diagnostics) ([]string, hcl.Diagnostics) {
	val, vd := a.Expr.Value(d.ctx)
	if vd.HasErrors() {
		return nil, append(diags, vd...)
	}
	bad := func(detail string) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid upgrades",
			Detail: detail, Subject: a.Expr.Range().Ptr()})
	}
	if val.IsNull() || !(val.Type().IsListType() || val.Type().IsTupleType() || val.Type().IsSetType()) {
		return nil, bad(`upgrades must be a list of protocol names such as ["websocket"].`)
	}
	out := make([]string, 0, val.LengthInt()) // not nil: an empty list allows no upgrade
	for it := val.ElementIterator(); it.Next(); {
		_, v := it.Element()
		if v.IsNull() || v.Type() != cty.String {
			return nil, bad(`upgrades must be a list of protocol names such as ["websocket"].`)
		}
		s := v.AsString()
		if !isToken(s) {
			return nil, bad(fmt.Sprintf("%q is not a protocol name: use a token such as \"websocket\" or \"h2c\", without a version.", s))
		}
		out = append(out, strings.ToLower(s))
	}
	return out, diags
}

// isToken reports whether s is a non-empty token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
