package engine

import (
	"strconv"
	"strings"
)

// Claims are the verified claims of the request's bearer token, as decoded JSON (map[string]any,
// []any, string, float64, bool). The jwt filter sets them under ClaimsKey.
type Claims map[string]any

// ClaimsKey holds the request's verified claims.
var ClaimsKey = NewKey[Claims]("claims")

// Lookup returns the claim at path; dots walk into nested objects ("realm.roles").
func (cl Claims) Lookup(path string) (any, bool) {
	var cur any = map[string]any(cl)
	for {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		// A claim whose own name contains the whole remaining path wins over nesting.
		if v, ok := m[path]; ok {
			return v, true
		}
		head, rest, found := strings.Cut(path, ".")
		if !found {
			return nil, false
		}
		if cur, ok = m[head]; !ok {
			return nil, false
		}
		path = rest
	}
}

// String returns the claim at path as a string: arrays are joined with sep, numbers and booleans
// are formatted, objects are not strings.
func (cl Claims) String(path, sep string) (string, bool) {
	v, ok := cl.Lookup(path)
	if !ok {
		return "", false
	}
	return claimString(v, sep)
}

func claimString(v any, sep string) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := claimString(e, sep)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, sep), true
	}
	return "", false
}

// Values returns the claim at path as a set of strings: an array's elements, or a string split on
// spaces (the OAuth "scope" convention).
func (cl Claims) Values(path string) []string {
	v, ok := cl.Lookup(path)
	if !ok {
		return nil
	}
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := claimString(e, " "); ok {
				out = append(out, s)
			}
		}
		return out
	}
	if s, ok := claimString(v, " "); ok {
		return []string{s}
	}
	return nil
}
