package rewrite

import (
	"regexp"
	"testing"
)

// TestTemplateMatchesExpand checks the parsed template against regexp.Expand, which defines
// what path_replace means, for references of every form, malformed ones included.
func TestTemplateMatchesExpand(t *testing.T) {
	exprs := []string{
		`^/v1/(.*)$`,
		`^/(?P<svc>[a-z]+)/(?P<rest>.*)$`,
		`^/(a)?(b)?(?P<x>c)?(.*)$`,
		`^/(?P<n0>x*)(?P<y1>y*)(.*)`,
		`^/(1)(2)(3)(4)(5)(6)(7)(8)(9)(10)(11)(.*)$`,
	}
	tmpls := []string{
		"/api/$1", "/$1", "$1", "/x/${1}y", "/$1y", "/$$1", "/$$", "/$", "/${", "/${}", "/${1",
		"/$svc/$rest", "/${svc}-${rest}", "/$nope/$1", "/$01/$0", "/$é/${é}", "/$n0$2$3",
		"/$11/$10/$12/$100000000/$99999999", "/a$-b", "/${x}${x}", "/plain", "/$x_1", "/$1$2$3$4",
		"/$ÿ", "/${1}${2}",
	}
	paths := []string{"/v1/users/7", "/api/x", "/abc", "/bc", "/", "/xxyy/z", "/1234567891011/q"}
	for _, e := range exprs {
		re := regexp.MustCompile(e)
		for _, tm := range tmpls {
			pt := parseTemplate(re, tm)
			for _, p := range paths {
				m := re.FindSubmatchIndex([]byte(p))
				if m == nil {
					continue
				}
				want := string(re.Expand(nil, []byte(tm), []byte(p), m))
				if got := string(pt.expand(nil, []byte(p), m)); got != want {
					t.Errorf("%q with %q on %q: %q, Expand gives %q", e, tm, p, got, want)
				}
			}
		}
	}
}

// TestTemplateOneGroup: the templates expanded by three appends (head, group 1, tail) are those
// of that shape, whatever the reference's spelling; TestTemplateMatchesExpand checks their output.
func TestTemplateOneGroup(t *testing.T) {
	re := regexp.MustCompile(`^/v1/(?P<rest>.*)$`)
	for tm, want := range map[string]bool{
		"/api/$1": true, "/$1": true, "$1": true, "/x/${1}y": true, "/api/${rest}": true, "/$rest/x": true,
		"/plain": false, "/$1/$1": false, "/$2": false, "/$$1": false, "/${1}${2}": false, "/$nope": false,
	} {
		if got := parseTemplate(re, tm).oneGroup; got != want {
			t.Errorf("%q: oneGroup %v, want %v", tm, got, want)
		}
	}
}
