package admin

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

const redacted = "[redacted]"

// Redact returns a JSON-ready copy of v in which every struct field tagged `sluice:"secret"` that
// is set shows as "[redacted]", and so does every free-form (cty) object attribute whose name
// suggests a secret (key, secret, token, password, credential). Field names follow json tags.
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
			out[toString(iter.Key())] = redactValue(iter.Value())
		}
		return out
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

func looksSecret(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"key", "secret", "token", "password", "credential"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
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
			if looksSecret(name) {
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
	b, err := ctyjson.Marshal(v, t)
	if err != nil {
		return nil
	}
	var x any
	_ = json.Unmarshal(b, &x)
	return x
}
