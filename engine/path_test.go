package engine

import "testing"

func TestNormalizePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"//a///b", "/a/b"},
		{"/v1/%61dmin/", "/v1/admin/"},
		{"/v1/%2e%2e/admin", "/admin"},
		{"/v1/./x", "/v1/x"},
		{"/v1/../../../etc", "/etc"},
		{"/a/b/..", "/a/"},
		{"/a/%2Fb", "/a/%2Fb"},
		{"/a/%2fb", "/a/%2Fb"},
		{"/a%26b", "/a%26b"},
		{"/%zz", "/%zz"},
		{"/%4", "/%4"},
		{"/..", "/"},
		{"/a/.../b", "/a/.../b"},
		{"a/b", "/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := string(NormalizePath(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("NormalizePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//x/%2e%2E/y", "/%41%2f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := NormalizePath(nil, []byte(in))
		if len(out) == 0 || out[0] != '/' {
			t.Fatalf("NormalizePath(%q) = %q: must start with /", in, out)
		}
		// Normalizing is idempotent.
		if again := NormalizePath(nil, out); string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}
