package cache

import "testing"

func TestParseDirectives(t *testing.T) {
	tests := []struct {
		in   string
		want directives
	}{
		{"", directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}},
		{"max-age=60", directives{maxAge: 60, sMaxAge: -1, swr: -1, sie: -1}},
		{"Public, Max-Age=60, S-MaxAge=120", directives{public: true, maxAge: 60, sMaxAge: 120, swr: -1, sie: -1}},
		{`max-age="30"`, directives{maxAge: 30, sMaxAge: -1, swr: -1, sie: -1}},
		{"max-age=60, max-age=10", directives{maxAge: 10, sMaxAge: -1, swr: -1, sie: -1}},
		{"max-age=abc", directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1, invalid: true}},
		{"max-age=", directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1, invalid: true}},
		{`private="Set-Cookie, X-User", max-age=5`, directives{private: true, privateFields: true, maxAge: 5, sMaxAge: -1, swr: -1, sie: -1}},
		{`no-cache="a,b"`, directives{noCache: true, noCacheFields: true, maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}},
		{"no-store , must-revalidate", directives{noStore: true, mustRevalidate: true, maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}},
		{"max-age=1, stale-while-revalidate=30, stale-if-error=600", directives{maxAge: 1, sMaxAge: -1, swr: 30, sie: 600}},
		{"max-age=99999999999999999999", directives{}}, // checked below: saturates
		{"only-if-cached", directives{onlyIfCached: true, maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}},
		{",,, ;", directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}},
	}
	for _, tt := range tests {
		got := parseDirectives([][]byte{[]byte(tt.in)})
		if tt.in == "max-age=99999999999999999999" {
			if got.maxAge < 1<<40 {
				t.Errorf("%q: max-age %d, want saturated", tt.in, got.maxAge)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func FuzzDirectives(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="a,b", no-cache`, `"`, `a="\"`, "s-maxage=1,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := parseDirectives([][]byte{[]byte(s)})
		if d.maxAge < -1 || d.sMaxAge < -1 || d.swr < -1 {
			t.Fatalf("%q: negative durations %+v", s, d)
		}
		hasListToken([][]byte{[]byte(s)}, "*")
	})
}
