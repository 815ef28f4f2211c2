package engine

import (
	"strings"
	"testing"
)

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
		{"/%zz", "/%25zz"},
		{"/%4", "/%254"},
		{"%7%30", "/%2570"},
		{"/%6%31dmin", "/%2561dmin"},
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

func TestConflictingFraming(t *testing.T) {
	tests := []struct {
		raw  string
		want bool
	}{
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length : 4\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nContent-Type: x\r\nTransfer-Encoding: chunked\r\nContent-Lengthy: 3\r\n\r\n", false},
		{"POST /Content-Length: HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	}
	for _, tt := range tests {
		if got := conflictingFraming([]byte(tt.raw)); got != tt.want {
			t.Errorf("conflictingFraming(%q) = %v, want %v", tt.raw, got, tt.want)
		}
	}
}

// FuzzRouter matches arbitrary hosts, paths and methods: never a panic, and a match always
// satisfies the pipeline's prefix.
func FuzzRouter(f *testing.F) {
	f.Add([]byte("api.example.com:8080"), []byte("/v1/%61dmin//x/../y"), []byte("GET"))
	f.Add([]byte("[::1]"), []byte(""), []byte(""))
	f.Add([]byte(":"), []byte("/%"), []byte("DELETE"))
	mk := func(name, prefix string, hosts, methods []string) *Pipeline {
		return NewPipeline(name, MatchConfig{PathPrefix: prefix, Hosts: hosts, Methods: methods}, "", nil, TerminalFunc(func(*Ctx) {}))
	}
	r := NewRouter([]*Pipeline{
		mk("root", "/", []string{"*.example.com"}, nil),
		mk("api", "/v1/", []string{"api.example.com"}, []string{"GET"}),
		mk("admin", "/v1/admin/", nil, []string{"DELETE"}),
	})
	f.Fuzz(func(t *testing.T, host, rawPath, method []byte) {
		path := NormalizePath(nil, rawPath)
		if p := r.Match(host, path, method); p != nil && !strings.HasPrefix(string(path), p.Match.PathPrefix) {
			t.Fatalf("pipeline %q matched %q outside its prefix %q", p.Name, path, p.Match.PathPrefix)
		}
	})
}

// FuzzConflictingFraming checks the raw-header scanner never panics and agrees with a plain
// line-by-line reading.
func FuzzConflictingFraming(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("\n\nc\nt"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := conflictingFraming(raw)
		var cl, te bool
		for i, line := range strings.Split(string(raw), "\n") {
			if i == 0 {
				continue
			}
			name, _, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimRight(name, " \t")) {
			case "content-length":
				cl = true
			case "transfer-encoding":
				te = true
			}
		}
		if got != (cl && te) {
			t.Fatalf("conflictingFraming(%q) = %v, line reading says %v", raw, got, cl && te)
		}
	})
}

func BenchmarkConflictingFraming(b *testing.B) {
	raw := []byte("GET /api/v1/items?page=2 HTTP/1.1\r\nHost: gateway.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nConnection: keep-alive\r\n" +
		"Cookie: session=0123456789abcdef; theme=dark\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if conflictingFraming(raw) {
			b.Fatal("conflict")
		}
	}
}
