package hcl

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

var (
	durationType    = reflect.TypeFor[engine.Duration]()
	sizeType        = reflect.TypeFor[engine.Size]()
	upstreamRefType = reflect.TypeFor[engine.UpstreamRef]()
	redisRefType    = reflect.TypeFor[engine.RedisRef]()
	ctyValueType    = reflect.TypeFor[cty.Value]()
)

// decoder decodes block bodies into config structs, remembering where each attribute was written
// so validation errors found later can point at it.
type decoder struct {
	ctx       *hcl.EvalContext
	upstreams map[string]bool
	redis     map[string]bool
	pipeAttrs ranges // where the attributes of the last decoded pipeline were written
}

// fieldInfo is one `hcl:"name,kind"` tagged struct field.
type fieldInfo struct {
	name     string
	index    int
	optional bool
	block    bool
}

func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		tag, ok := t.Field(i).Tag.Lookup("hcl")
		if !ok {
			continue
		}
		name, kind, _ := strings.Cut(tag, ",")
		if kind == "label" {
			continue // a block's label, set by the enclosing block (labelIndex)
		}
		out = append(out, fieldInfo{name: name, index: i, optional: kind == "optional" || kind == "block", block: kind == "block"})
	}
	return out
}

// labelIndex returns the field of t tagged `hcl:"NAME,label"`, the label of blocks decoded into
// t (`header "x-canary" { … }`), or -1.
func labelIndex(t reflect.Type) int {
	for i := 0; i < t.NumField(); i++ {
		if _, kind, _ := strings.Cut(t.Field(i).Tag.Get("hcl"), ","); kind == "label" {
			return i
		}
	}
	return -1
}

// ranges maps dotted attribute paths ("health_check.interval") to where they were written.
type ranges map[string]hcl.Range

// decodeBody decodes body into the struct dst points to: defaults first, then attributes and
// nested blocks, then Validate, whose FieldErrors are reported at their attributes. block is the
// range to blame for errors that name no attribute.
func (d *decoder) decodeBody(body hcl.Body, dst reflect.Value, prefix string, block hcl.Range, rg ranges) hcl.Diagnostics {
	if sd, ok := dst.Interface().(interface{ SetDefaults() }); ok {
		sd.SetDefaults()
	}
	t := dst.Elem().Type()
	fields := structFields(t)
	schema := &hcl.BodySchema{}
	for _, f := range fields {
		if f.block {
			bs := hcl.BlockHeaderSchema{Type: f.name}
			if et := t.Field(f.index).Type; et.Kind() == reflect.Slice && et.Elem().Kind() == reflect.Struct && labelIndex(et.Elem()) >= 0 {
				bs.LabelNames = []string{"name"}
			}
			schema.Blocks = append(schema.Blocks, bs)
		} else {
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.name, Required: !f.optional})
		}
	}
	content, diags := body.Content(schema)
	sv := dst.Elem()
	for _, f := range fields {
		fv := sv.Field(f.index)
		path := prefix + f.name
		if !f.block {
			attr, ok := content.Attributes[f.name]
			if !ok {
				continue
			}
			rg[path] = attr.Expr.Range()
			diags = append(diags, d.decodeAttr(attr, fv)...)
			continue
		}
		var blocks []*hcl.Block
		for _, b := range content.Blocks {
			if b.Type == f.name {
				blocks = append(blocks, b)
			}
		}
		if len(blocks) == 0 {
			continue
		}
		rg[path] = blocks[0].DefRange
		switch fv.Kind() {
		case reflect.Pointer:
			for _, extra := range blocks[1:] {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate %s block", f.name),
					Detail:  fmt.Sprintf("Only one %q block is allowed here; the first was at %s.", f.name, blocks[0].DefRange),
					Subject: extra.DefRange.Ptr(),
				})
			}
			nv := reflect.New(fv.Type().Elem())
			diags = append(diags, d.decodeBody(blocks[0].Body, nv, path+".", blocks[0].DefRange, rg)...)
			fv.Set(nv)
		case reflect.Slice:
			sl := reflect.MakeSlice(fv.Type(), 0, len(blocks))
			for i, b := range blocks {
				nv := reflect.New(fv.Type().Elem())
				brg := ranges{}
				if li := labelIndex(fv.Type().Elem()); li >= 0 {
					nv.Elem().Field(li).SetString(b.Labels[0])
				}
				diags = append(diags, d.decodeBody(b.Body, nv, path+".", b.DefRange, brg)...)
				sl = reflect.Append(sl, nv.Elem())
				// Each block's attributes also go under its index ("certificate[1].key_file"),
				// for errors found after decoding (a file that does not load).
				ip := fmt.Sprintf("%s[%d]", path, i)
				rg[ip] = b.DefRange
				for k, r := range brg {
					rg[k] = r
					rg[ip+strings.TrimPrefix(k, path)] = r
				}
			}
			fv.Set(sl)
		case reflect.Struct:
			nv := fv.Addr()
			diags = append(diags, d.decodeBody(blocks[0].Body, nv, path+".", blocks[0].DefRange, rg)...)
		default:
			panic(fmt.Sprintf("hcl: block field %s must be a pointer, slice or struct", path))
		}
	}
	if diags.HasErrors() {
		return diags
	}
	if v, ok := dst.Interface().(interface{ Validate() error }); ok {
		diags = append(diags, validationDiags(v.Validate(), prefix, block, rg)...)
	}
	if v, ok := dst.Interface().(interface{ Warnings() error }); ok {
		// Accepted but worth a look (an explicitly unlimited setting): reported, not refused.
		for _, d := range validationDiags(v.Warnings(), prefix, block, rg) {
			d.Severity, d.Summary = hcl.DiagWarning, "Unbounded setting"
			diags = append(diags, d)
		}
	}
	return diags
}

// validationDiags turns a Validate error into diagnostics, each at its attribute if it names one.
func validationDiags(err error, prefix string, block hcl.Range, rg ranges) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, e := range engine.FieldErrors(err) {
		subject := block
		detail := e.Error()
		sev, summary := hcl.DiagError, "Invalid value"
		if fe, ok := engine.AsFieldError(e); ok {
			detail = fmt.Sprintf("%s: %s.", fe.Field, capitalizeTrim(fe.Err.Error()))
			if r, ok := rg[prefix+fe.Field]; ok {
				subject = r
			}
			if fe.Warning {
				sev, summary = hcl.DiagWarning, "Unsafe setting"
			}
		}
		diags = append(diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: subject.Ptr()})
	}
	return diags
}

func capitalizeTrim(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// decodeAttr evaluates one attribute into field fv according to the field's type.
func (d *decoder) decodeAttr(attr *hcl.Attribute, fv reflect.Value) hcl.Diagnostics {
	switch fv.Type() {
	case upstreamRefType:
		name, diags := d.reference(attr, "upstream", d.upstreams)
		if !diags.HasErrors() {
			fv.SetString(name)
		}
		return diags
	case redisRefType:
		name, diags := d.reference(attr, "redis", d.redis)
		if !diags.HasErrors() {
			fv.SetString(name)
		}
		return diags
	}
	val, diags := attr.Expr.Value(d.ctx)
	if diags.HasErrors() {
		return diags
	}
	if val.IsNull() {
		return diags
	}
	bad := func(detail string) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
			Detail:  fmt.Sprintf("Inappropriate value for attribute %q: %s.", attr.Name, detail),
			Subject: attr.Expr.Range().Ptr(), Expression: attr.Expr, EvalContext: d.ctx,
		})
	}
	invalid := func(detail string) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Invalid value",
			Detail:  fmt.Sprintf("%s: %s.", attr.Name, detail),
			Subject: attr.Expr.Range().Ptr(), Expression: attr.Expr, EvalContext: d.ctx,
		})
	}
	switch fv.Type() {
	case ctyValueType:
		fv.Set(reflect.ValueOf(val))
		return diags
	case durationType:
		sv, err := convert.Convert(val, cty.String)
		if err != nil {
			return bad(`a duration string such as "250ms" or "30s" is required`)
		}
		dur, perr := time.ParseDuration(sv.AsString())
		if perr != nil {
			return invalid(fmt.Sprintf(`%q is not a duration; write one such as "250ms", "30s" or "10m"`, sv.AsString()))
		}
		if dur < 0 {
			return invalid("a duration must not be negative")
		}
		fv.SetInt(int64(dur))
		return diags
	case sizeType:
		if val.Type() == cty.Number {
			bf := val.AsBigFloat()
			n, acc := bf.Int64()
			if acc != 0 || n < 0 {
				return invalid("a size must be a whole, non-negative number of bytes")
			}
			fv.SetInt(n)
			return diags
		}
		sv, err := convert.Convert(val, cty.String)
		if err != nil {
			return bad(`a size such as "16KiB" or "8MiB" is required`)
		}
		sz, perr := engine.ParseSize(sv.AsString())
		if perr != nil {
			return invalid(perr.Error())
		}
		fv.SetInt(int64(sz))
		return diags
	}
	target := fv
	if fv.Kind() == reflect.Pointer {
		target = reflect.New(fv.Type().Elem()).Elem()
	}
	ty, err := gocty.ImpliedType(target.Interface())
	if err != nil {
		panic(fmt.Sprintf("hcl: field for %q has an unsupported type %s", attr.Name, fv.Type()))
	}
	cv, err := convert.Convert(val, ty)
	if err != nil {
		return bad(fmt.Sprintf("%s required", ty.FriendlyName()))
	}
	if err := gocty.FromCtyValue(cv, target.Addr().Interface()); err != nil {
		return invalid(err.Error())
	}
	if fv.Kind() == reflect.Pointer {
		fv.Set(target.Addr())
	}
	return diags
}

// reference decodes an attribute written as `root.NAME`, such as `upstream.catalog`.
func (d *decoder) reference(attr *hcl.Attribute, root string, declared map[string]bool) (string, hcl.Diagnostics) {
	trav, diags := hcl.AbsTraversalForExpr(attr.Expr)
	if diags.HasErrors() || len(trav) != 2 || trav.RootName() != root {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid reference",
			Detail:  fmt.Sprintf("%s must be a reference to a %s block, written as %s.NAME.", attr.Name, root, root),
			Subject: attr.Expr.Range().Ptr(),
		}}
	}
	step, ok := trav[1].(hcl.TraverseAttr)
	if !ok {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid reference",
			Detail:  fmt.Sprintf("Write the reference as %s.NAME.", root),
			Subject: attr.Expr.Range().Ptr(),
		}}
	}
	if !declared[step.Name] {
		detail := fmt.Sprintf("There is no %s block named %q.", root, step.Name)
		if s := suggest(step.Name, keys(declared)); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: fmt.Sprintf("Reference to undeclared %s", root),
			Detail: detail, Subject: attr.Expr.Range().Ptr(),
		}}
	}
	return step.Name, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest returns the candidate closest to given, if it is close enough to be a likely typo.
func suggest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
