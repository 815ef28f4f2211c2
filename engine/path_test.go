package engine

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
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
	// What fasthttp's RawHeaders returns: the header block without the request line.
	tests := []struct {
		raw  string
		want bool
	}{
		{"Host: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"host: x\r\ntransfer-encoding: chunked\r\ncontent-length : 4\r\n\r\n", true},
		// Either framing header as the first line (main skipped line 0, taking it for the request line).
		{"Content-Length: 4\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"Transfer-Encoding: chunked\r\nHost: x\r\nContent-Length: 4\r\n\r\n", true},
		{"transfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n", true},
		{"Host: x\r\nContent-Length: 4\r\n\r\n", false},
		{"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"Content-Length: 4\r\n\r\n", false},
		{"Content-Type: x\r\nTransfer-Encoding: chunked\r\nContent-Lengthy: 3\r\n\r\n", false},
		{"X-Note: Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		// A CR where the hyphen goes is not a hyphen ('\r'|0x20 == '-'), found by FuzzConflictingFraming.
		{"Content\rLength: 4\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := conflictingFraming([]byte(tt.raw)); got != tt.want {
			t.Errorf("conflictingFraming(%q) = %v, want %v", tt.raw, got, tt.want)
		}
	}
}

// TestConflictingFramingRawHeaders feeds conflictingFraming what fasthttp's RawHeaders really
// returns for requests with each framing header first, last, and in between.
func TestConflictingFramingRawHeaders(t *testing.T) {
	for _, head := range []string{
		"POST / HTTP/1.1\r\nContent-Length: 4\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: x\r\nContent-Length: 4\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(head))); err != nil {
			t.Fatalf("%q: %v", head, err)
		}
		raw := h.RawHeaders()
		if strings.HasPrefix(string(raw), "POST") {
			t.Fatalf("RawHeaders holds the request line: %q", raw)
		}
		if !conflictingFraming(raw) {
			t.Errorf("conflictingFraming(%q) = false for %q", raw, head)
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
	f.Add([]byte("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("Transfer-Encoding: chunked\r\nHost: x\r\nContent-Length: 1\r\n\r\n"))
	f.Add([]byte("\n\nc\nt"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := conflictingFraming(raw)
		// raw is a header block as RawHeaders returns it: every line, the first included, may
		// be a header.
		var cl, te bool
		for _, line := range strings.Split(string(raw), "\n") {
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
	raw := []byte("Host: gateway.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nConnection: keep-alive\r\n" +
		"Cookie: session=0123456789abcdef; theme=dark\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if conflictingFraming(raw) {
			b.Fatal("conflict")
		}
	}
}

// rawPathRequest parses "GET target HTTP/1.1" with the given Host as the server would; ok is
// false when the server would reject it.
func rawPathRequest(target, host string) (*fasthttp.Request, bool) {
	req := new(fasthttp.Request)
	head := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	if err := req.Read(bufio.NewReader(strings.NewReader(head))); err != nil {
		return nil, false
	}
	return req, true
}

func TestRawPath(t *testing.T) {
	tests := []struct{ target, path, query string }{
		{"/", "/", ""},
		{"/a/b", "/a/b", ""},
		{"/a/%2Fb?x=1&y=%20", "/a/%2Fb", "x=1&y=%20"},
		{"/a?", "/a", ""},
		{"/a?x#frag", "/a", "x"},
		{"/a#frag?x", "/a", ""},
		{"/a/./../b", "/a/./../b", ""},
		{"//evil/x?q", "//evil/x", "q"},          // not origin-form: through the URI
		{"http://other.test/p?q=1", "/p", "q=1"}, // absolute-form: through the URI
		{"http://other.test", "/", ""},           // absolute-form without a path
	}
	for _, tt := range tests {
		req, ok := rawPathRequest(tt.target, "h.test")
		if !ok {
			t.Fatalf("%q: rejected", tt.target)
		}
		path, query := RawPath(req)
		if string(path) != tt.path || string(query) != tt.query {
			t.Errorf("RawPath(%q) = %q, %q; want %q, %q", tt.target, path, query, tt.path, tt.query)
		}
	}
	// A Host fasthttp's URI cannot parse leaves its path empty; the split path is the request's.
	req, ok := rawPathRequest("/admin?x", "[::1")
	if !ok {
		t.Fatal("rejected")
	}
	if path, query := RawPath(req); string(path) != "/admin" || string(query) != "x" {
		t.Errorf("with an unparsable Host: %q, %q; want the request's own path and query", path, query)
	}
}

// FuzzRawPath checks the in-place split against fasthttp's URI for every request-target the
// server accepts.
func FuzzRawPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b?c=d", "/a#b?c", "/a?b#c?d", "//x/y", "http://h/p?q", "*", "/%2F?%3F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		req, ok := rawPathRequest(target, "h.test")
		if !ok {
			return
		}
		path, query := RawPath(req)
		u := req.URI()
		if string(path) != string(u.PathOriginal()) || string(query) != string(u.QueryString()) {
			t.Errorf("RawPath(%q) = %q, %q; URI gives %q, %q", target, path, query, u.PathOriginal(), u.QueryString())
		}
	})
}
