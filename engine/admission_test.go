package engine

import (
	"strings"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"example.com", "example.com", true},
		{"Example.COM", "example.com", true},
		{"example.com.", "example.com", true},
		{"example.com.:8080", "example.com:8080", true},
		{"example.com:", "example.com", true},
		{"example.com:080", "example.com:080", true},
		{"a-b.c-d.example", "a-b.c-d.example", true},
		{"127.0.0.1:80", "127.0.0.1:80", true},
		{"[::1]", "[::1]", true},
		{"[::1]:8080", "[::1]:8080", true},
		{"[2001:DB8::1]", "[2001:db8::1]", true},
		{"[::ffff:10.0.0.1]", "[::ffff:10.0.0.1]", true},
		{strings.Repeat("a", 63) + ".example", strings.Repeat("a", 63) + ".example", true},
		{strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "a", true}, // 253 bytes
		{strings.Repeat("a.", 126) + "a.", strings.Repeat("a.", 126) + "a", true},

		{"example.com..", "", false},
		{".example.com", "", false},
		{"example..com", "", false},
		{".", "", false},
		{":80", "", false},
		{"x@example.com", "", false},
		{"example.com,other.example", "", false},
		{"exämple.com", "", false},
		{"exa mple.com", "", false},
		{"under_score.example", "", false},
		{"example.com:8o", "", false},
		{"example.com:65536", "", false},
		{"example.com:123456", "", false},
		{"example.com:80:80", "", false},
		{strings.Repeat("a", 64) + ".example", "", false},
		{strings.Repeat("a.", 127), strings.Repeat("a.", 126) + "a", true}, // 253 bytes and the root's dot
		{strings.Repeat("a.", 127) + ".", "", false},
		{strings.Repeat("a.", 127) + "a", "", false}, // 255 bytes
		{"[::1", "", false},
		{"[::1]x", "", false},
		{"[fe80::1%25eth0]", "", false},
		{"[v1.fe]", "", false},
		{"[1.2.3.4]", "", false},
		{"[example.com]", "", false},
	}
	for _, tt := range tests {
		got, ok := canonicalHost(nil, []byte(tt.in))
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("canonicalHost(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzCanonicalHost checks that a canonical host is its own canonical form, holds only what a
// DNS name or an IP literal may, and never exceeds maxAuthority.
func FuzzCanonicalHost(f *testing.F) {
	for _, s := range []string{"Example.COM.:80", "[::1]:8080", "a..b", "x@y", "[fe80::1%25x]", "é.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := canonicalHost(nil, []byte(in))
		if !ok {
			return
		}
		if len(got) > maxAuthority {
			t.Fatalf("canonicalHost(%q) = %q: longer than %d", in, got, maxAuthority)
		}
		again, ok := canonicalHost(nil, got)
		if !ok || string(again) != string(got) {
			t.Fatalf("canonicalHost(%q) = %q, but that canonicalizes to %q, %v", in, got, again, ok)
		}
		if strings.ContainsAny(string(got), "@,_ %/\\?#") || strings.ToLower(string(got)) != string(got) {
			t.Fatalf("canonicalHost(%q) = %q", in, got)
		}
	})
}

func BenchmarkCanonicalHost(b *testing.B) {
	for _, host := range []string{"api.example.com", "API.Example.com.:8443", "[2001:db8::1]:8443"} {
		b.Run(host, func(b *testing.B) {
			in := []byte(host)
			var buf [maxAuthority]byte
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := canonicalHost(buf[:0], in); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

func TestCanonicalHostAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, host := range []string{"api.example.com:8443", "API.Example.com.:8443"} {
		in := []byte(host)
		var buf [maxAuthority]byte
		if n := testing.AllocsPerRun(100, func() { canonicalHost(buf[:0], in) }); n != 0 {
			t.Errorf("canonicalHost(%q) allocates %v times, want 0", host, n)
		}
	}
}

func TestValidHeaderBlock(t *testing.T) {
	tests := []struct {
		raw  string
		want bool
	}{
		{"Host: x\r\nAccept: */*\r\n\r\n", true},
		{"Host: x\r\nX: a\r\n  folded\r\n\r\n", true},
		{"Authorization: a\r\nHost: x\r\n\r\n", true},
		{"X-!#$%&'*+-.^_`|~: ok\r\n\r\n", true},
		{"", true},
		{"X Foo: bar\r\n\r\n", false},
		{"Host: x\r\nContent Length: 10\r\n\r\n", false},
		{"Host: x\r\nX\tFoo: bar\r\n\r\n", false},
		{"Host: x\r\nX(Foo): bar\r\n\r\n", false},
		{"Host: x\r\nAuthorization: a\r\nAUTHORIZATION: b\r\n\r\n", false},
		{"Authorization: a\r\nHost: x\r\nauthorization: a\r\n\r\n", false},
		{"Host: x\r\nno colon\r\n\r\n", false},
	}
	for _, tt := range tests {
		if got := validHeaderBlock([]byte(tt.raw)); got != tt.want {
			t.Errorf("validHeaderBlock(%q) = %v, want %v", tt.raw, got, tt.want)
		}
	}
}

func BenchmarkValidHeaderBlock(b *testing.B) {
	raw := []byte("Host: gateway.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nConnection: keep-alive\r\n" +
		"Cookie: session=0123456789abcdef; theme=dark\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if !validHeaderBlock(raw) {
			b.Fatal("refused")
		}
	}
}

func TestUnescapedPath(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"/admin%2Fsecret", "/admin/secret"},
		{"/%2Fadmin/secret", "/admin/secret"},
		{"/x/..%2Fadmin/secret", "/admin/secret"},
		{"/x/..%5cadmin", "/admin"},
		{"/a\\b", "/a/b"},
		{"/%2F%2Fevil.example/x", "/evil.example/x"},
		{"/a%252Fb", "/a%252Fb"},
		{"/a/%2E%2E%2Fb", "/b"},
	}
	for _, tt := range tests {
		if got := unescapedPath([]byte("keep"), []byte(tt.raw)); string(got) != "keep"+tt.want {
			t.Errorf("unescapedPath(%q) = %q, want %q", tt.raw, got, "keep"+tt.want)
		}
		if !hasEscapedSlash([]byte(tt.raw)) && tt.raw != "/a%252Fb" {
			t.Errorf("hasEscapedSlash(%q) = false", tt.raw)
		}
	}
	for _, p := range []string{"/a/b", "/a%2", "/a%2G", "/a%252F", "/%5"} {
		if hasEscapedSlash([]byte(p)) {
			t.Errorf("hasEscapedSlash(%q) = true", p)
		}
	}
}

func TestHostMemo(t *testing.T) {
	var m hostMemo
	if m.is([]byte("a.example")) {
		t.Fatal("an empty memo matched")
	}
	m.set([]byte("a.example"))
	for host, want := range map[string]bool{"a.example": true, "a.exampl": false, "a.example:1": false, "A.example": false, "": false} {
		if got := m.is([]byte(host)); got != want {
			t.Errorf("is(%q) = %v, want %v", host, got, want)
		}
	}
	long := strings.Repeat("a", hostMemoSize+1)
	m.set([]byte(long))
	if m.is([]byte(long)) || !m.is([]byte("a.example")) {
		t.Error("a Host longer than the memo replaced it")
	}
	var none *hostMemo
	none.set([]byte("a.example"))
	if none.is([]byte("a.example")) {
		t.Error("a nil memo matched")
	}
}
