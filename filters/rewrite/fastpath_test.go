package rewrite

import (
	"regexp"
	"slices"
	"testing"
)

// TestLiteralPrefixAgreesWithRegexp: for every expression the fast path takes, it finds what
// regexp finds (or defers to it), on paths chosen to tell them apart.
func TestLiteralPrefixAgreesWithRegexp(t *testing.T) {
	exprs := []string{`^/v1/(.*)`, `^/v1/(.*)$`, `^/v1/(.+)`, `^/v1(.*)`, `(?s)^/v1/(.*)`, `^/(.*)`, `^/v1/(?P<rest>.*)`}
	paths := []string{"/v1/", "/v1/a", "/v1/users/7", "/v1", "/v10", "/v2/x", "/", "", "/v1/a\nb", "/v1/\xff\xfe", "/V1/a", "/x/v1/a"}
	for _, e := range exprs {
		lp, ok := parseLiteralPrefix(e)
		if !ok {
			t.Errorf("%s: not taken by the fast path", e)
			continue
		}
		re := regexp.MustCompile(e)
		for _, p := range paths {
			var m [4]int
			matched, sure := lp.match([]byte(p), &m)
			if !sure {
				continue
			}
			want := re.FindSubmatchIndex([]byte(p))
			if matched != (want != nil) || matched && !slices.Equal(m[:], want) {
				t.Errorf("%s on %q: fast path %v %v, regexp %v", e, p, matched, m, want)
			}
		}
	}
	for _, e := range []string{`^/v1/(.*)/x`, `/v1/(.*)`, `^/v1/([a-z]*)`, `(?i)^/v1/(.*)`, `^/v1/(.*)(.*)`, `(?m)^/v1/(.*)`, `^/v1/(.*?)`, `^/é/(.*)`, `^/v1/(?:.*)`} {
		if _, ok := parseLiteralPrefix(e); ok {
			t.Errorf("%s: taken by the fast path, which cannot match it", e)
		}
	}
}
