// Package ascii compares HTTP tokens (header names, directives, codings) ignoring ASCII case only.
// bytes.EqualFold folds Unicode too ("ſ" matches "s", the Kelvin sign matches "k"), which a
// protocol token must not do.
package ascii

// EqualFold reports whether a and b are equal ignoring ASCII case.
func EqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// EqualFoldLower reports whether b equals the lower-case ASCII string s, ignoring the case of b.
func EqualFoldLower(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
