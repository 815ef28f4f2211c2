package admin

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/sluice-gateway/sluice/engine/secret"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

const redacted = secret.Marker

// Redact returns a JSON-ready copy of v in which every struct field tagged `sluice:"secret"` that
// is set shows as "[redacted]" (a map's values do, its keys stay), and so does the value of every map key and free-form (cty) object
// attribute named like a secret (secret.Name: a headers filter's "Authorization" or "X-Api-Key",
// a Wasm config's "api_key"). Every other string has the credentials of its URLs and its Bearer
// or Basic tokens hidden (secret.Text: a jwks_url with ?access_token=, an endpoint with
// user:password@). Field names follow json tags.
func Redact(v any) any { return redactValue(reflect.ValueOf(v)) }

var (
	ctyValueType      = reflect.TypeFor[cty.Value]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func redactValue(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type() == ctyValueType {
		return redactCty(v.Interface().(cty.Value))
	}
	if v.Type().Implements(textMarshalerType) && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err == nil {
			return string(b)
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return redactValue(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omitempty") && fv.IsZero() {
				continue
			}
			if f.Tag.Get("sluice") == "secret" && fv.Kind() == reflect.Map {
				// A map of secrets (telemetry headers): the names show, every value is hidden.
				m := map[string]any{}
				for it := fv.MapRange(); it.Next(); {
					m[toString(it.Key())] = redacted
				}
				out[name] = m
				continue
			}
			if f.Tag.Get("sluice") == "secret" {
				if fv.IsZero() {
					out[name] = ""
				} else {
					out[name] = redacted
				}
				continue
			}
			out[name] = redactValue(fv)
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return []any{}
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = redactValue(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		iter := v.MapRange()
		for iter.Next() {
			name := toString(iter.Key())
			if secret.Name(name) && !iter.Value().IsZero() {
				out[name] = redacted
				continue
			}
			out[name] = redactValue(iter.Value())
		}
		return out
	case reflect.String:
		return secret.Text(v.String())
	}
	return v.Interface()
}

func toString(v reflect.Value) string {
	if v.Kind() == reflect.String {
		return v.String()
	}
	b, _ := json.Marshal(v.Interface())
	return string(b)
}

func redactCty(v cty.Value) any {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	t := v.Type()
	switch {
	case t.IsObjectType() || t.IsMapType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			name := k.AsString()
			if secret.Name(name) {
				out[name] = redacted
				continue
			}
			out[name] = redactCty(ev)
		}
		return out
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		var out []any
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			out = append(out, redactCty(ev))
		}
		return out
	}
	if t == cty.String {
		return secret.Text(v.AsString())
	}
	b, err := ctyjson.Marshal(v, t)
	if err != nil {
		return nil
	}
	var x any
	_ = json.Unmarshal(b, &x)
	return x
}
