package ascii

import "testing"

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"Set-Cookie", "set-cookie", true},
		{"MAX-AGE", "max-age", true},
		{"max-age", "max-ag", false},
		{"max-age", "max_age", false},
		{"", "", true},
		// Unicode folding does not apply: U+017F (ſ) and U+212A (Kelvin) are not s and k.
		{"\u017fet", "set", false},
		{"\u212aeep", "keep", false},
		// Only letters fold: '@' (0x40) and '`' (0x60) differ by the case bit.
		{"@", "`", false},
	} {
		if got := EqualFold([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := EqualFoldLower([]byte(tc.a), tc.b); got != tc.want {
			t.Errorf("EqualFoldLower(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
