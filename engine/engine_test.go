package engine

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// recorder is a filter that records the order of its phases into a shared log.
type recorder struct {
	name    string
	log     *[]string
	respond bool
}

func (r *recorder) OnRequest(c *Ctx) Verdict {
	*r.log = append(*r.log, r.name+".req")
	if r.respond {
		c.Response.SetStatusCode(401)
		return Respond
	}
	return Continue
}

func (r *recorder) OnResponse(c *Ctx) { *r.log = append(*r.log, r.name+".resp") }

func TestPipelineOrder(t *testing.T) {
	tests := []struct {
		name    string
		respond string // which filter answers locally
		want    string
	}{
		{"all continue", "", "a.req b.req c.req terminal c.resp b.resp a.resp"},
		{"b answers", "b", "a.req b.req b.resp a.resp"},
		{"a answers", "a", "a.req a.resp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			var stages []Stage
			for _, n := range []string{"a", "b", "c"} {
				stages = append(stages, Stage{Kind: n, Filter: &recorder{name: n, log: &log, respond: n == tt.respond}})
			}
			p := NewPipeline("p", MatchConfig{}, "", stages, TerminalFunc(func(c *Ctx) { log = append(log, "terminal") }))
			var fc fasthttp.RequestCtx
			c := AcquireCtx(&fc)
			defer ReleaseCtx(c)
			p.Serve(c)
			if got := strings.Join(log, " "); got != tt.want {
				t.Errorf("order = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRouter(t *testing.T) {
	mk := func(name, prefix string, hosts, methods []string) *Pipeline {
		return NewPipeline(name, MatchConfig{PathPrefix: prefix, Hosts: hosts, Methods: methods}, "", nil, TerminalFunc(func(*Ctx) {}))
	}
	r := NewRouter([]*Pipeline{
		mk("root", "/", nil, nil),
		mk("api", "/v1/", []string{"api.example.com", "localhost"}, []string{"GET", "POST"}),
		mk("admin", "/v1/admin/", []string{"api.example.com"}, []string{"DELETE"}),
		mk("wild", "/w/", []string{"*.example.org"}, nil),
	})
	tests := []struct{ host, path, method, want string }{
		{"api.example.com", "/v1/items", "GET", "api"},
		{"API.EXAMPLE.COM:8080", "/v1/items", "GET", "api"},
		{"localhost:80", "/v1/items", "POST", "api"},
		{"api.example.com", "/v1/items", "DELETE", "root"},
		{"api.example.com", "/v1/admin/x", "DELETE", "admin"},
		{"api.example.com", "/v1/admin/x", "GET", "api"},
		{"other.com", "/v1/items", "GET", "root"},
		{"a.example.org", "/w/x", "GET", "wild"},
		{"example.org", "/w/x", "GET", "root"},
		{"[::1]:8080", "/", "GET", "root"},
	}
	for _, tt := range tests {
		p := r.Match([]byte(tt.host), []byte(tt.path), []byte(tt.method))
		got := ""
		if p != nil {
			got = p.Name
		}
		if got != tt.want {
			t.Errorf("Match(%s %s %s) = %q, want %q", tt.method, tt.host, tt.path, got, tt.want)
		}
	}
	none := NewRouter([]*Pipeline{mk("api", "/v1/", nil, nil)})
	if p := none.Match([]byte("x"), []byte("/v2"), []byte("GET")); p != nil {
		t.Errorf("Match outside every prefix = %q, want nil", p.Name)
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParsePrefixes([]string{"10.0.0.0/8", "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	ts := trustedSet(trusted)
	tests := []struct{ peer, xff, want string }{
		{"203.0.113.9", "1.2.3.4", "203.0.113.9"},                // untrusted peer: XFF ignored
		{"10.1.2.3", "1.2.3.4", "1.2.3.4"},                       // trusted peer
		{"10.1.2.3", "1.2.3.4, 10.9.9.9", "1.2.3.4"},             // trusted hops skipped from the right
		{"10.1.2.3", "6.6.6.6, 1.2.3.4, 192.168.1.1", "1.2.3.4"}, // spoofed left entry ignored
		{"10.1.2.3", "garbage", "10.1.2.3"},
		{"10.1.2.3", "", "10.1.2.3"},
	}
	for _, tt := range tests {
		got := ts.clientAddr(netip.MustParseAddr(tt.peer), []byte(tt.xff))
		if got.String() != tt.want {
			t.Errorf("clientAddr(%s, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]Size{"0": 0, "512": 512, "16KiB": 16 << 10, "8MiB": 8 << 20, "1GiB": 1 << 30, "10KB": 10000, "2 MB": 2e6}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "8 megs", "99999999999999999999"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded, want an error", in)
		}
	}
}

// testServer returns a server whose one pipeline ends in a terminal answering 200.
func testServer(t testing.TB, stages ...Stage) *Server {
	spec := &Spec{}
	spec.Server.SetDefaults()
	spec.Server.RequestID = ""
	p := NewPipeline("p", MatchConfig{PathPrefix: "/"}, "", stages, TerminalFunc(func(c *Ctx) {
		c.Response.SetStatusCode(200)
		c.Response.SetBodyString("ok")
	}))
	gw := &Gateway{Spec: spec, Pipelines: []*Pipeline{p}, Router: NewRouter([]*Pipeline{p})}
	s, err := NewServer(gw, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRequestCtx(method, uri string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("example.com")
	fc := new(fasthttp.RequestCtx)
	fc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}, nil)
	return fc
}

func TestHandlerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tests := []struct {
		name, uri, host string
		slashes         SlashAction
	}{
		{"plain", "/v1/items/%41a?x=1", "example.com", SlashReject},
		// Canonicalising the host (case, trailing dot) and unescaping a slash rewrite the
		// request in place.
		{"host canonicalised", "/v1/items?x=1", "API.Example.COM.:8080", SlashReject},
		{"slash unescaped", "/v1/items/%2Fa/..%5Cb?x=1", "example.com", SlashUnescape},
		{"slash kept", "/v1/items/%2Fa?x=1", "example.com", SlashKeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t)
			s.slashes = tt.slashes
			fc := newRequestCtx("GET", tt.uri)
			allocs := testing.AllocsPerRun(1000, func() {
				fc.Response.Reset()
				fc.Request.SetRequestURI(tt.uri)
				fc.Request.Header.SetHost(tt.host)
				s.handle(fc)
			})
			if allocs != 0 {
				t.Errorf("a request through an empty pipeline allocates %v times, want 0", allocs)
			}
			if fc.Response.StatusCode() != 200 {
				t.Errorf("status = %d", fc.Response.StatusCode())
			}
		})
	}
}

func TestRequestIDGenerated(t *testing.T) {
	s := testServer(t)
	s.reqID, s.reqIDh = "X-Request-Id", NewHeaderName("X-Request-Id")
	fc := newRequestCtx("GET", "/")
	fc.Request.Header.Set("X-Request-Id", "client-chosen")
	s.handle(fc)
	got := string(fc.Response.Header.Peek("X-Request-Id"))
	if len(got) != 32 || got == "client-chosen" {
		t.Errorf("X-Request-Id = %q: an untrusted client's id must be replaced by a generated one", got)
	}
}

type panicky struct{ inResponse bool }

func (p panicky) OnRequest(*Ctx) Verdict {
	if !p.inResponse {
		panic("boom")
	}
	return Continue
}

func (p panicky) OnResponse(*Ctx) {
	if p.inResponse {
		panic("boom")
	}
}

// TestPanicStillRunsResponsePhases: a panic anywhere answers 500, and every filter whose
// request phase ran still gets its response phase (to give back what it holds).
func TestPanicStillRunsResponsePhases(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stages func(log *[]string) []Stage
		term   func(*Ctx)
		want   string
	}{
		{"request phase", func(log *[]string) []Stage {
			return []Stage{{Kind: "a", Filter: &recorder{name: "a", log: log}}, {Kind: "p", Filter: panicky{}}, {Kind: "c", Filter: &recorder{name: "c", log: log}}}
		}, nil, "a.req a.resp"},
		{"response phase", func(log *[]string) []Stage {
			return []Stage{{Kind: "a", Filter: &recorder{name: "a", log: log}}, {Kind: "p", Filter: panicky{inResponse: true}}, {Kind: "c", Filter: &recorder{name: "c", log: log}}}
		}, func(c *Ctx) {}, "a.req c.req c.resp a.resp"},
		{"terminal", func(log *[]string) []Stage {
			return []Stage{{Kind: "a", Filter: &recorder{name: "a", log: log}}}
		}, func(c *Ctx) { panic("terminal") }, "a.req a.resp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			term := tt.term
			if term == nil {
				term = func(*Ctx) {}
			}
			p := NewPipeline("p", MatchConfig{}, "", tt.stages(&log), TerminalFunc(term))
			var fc fasthttp.RequestCtx
			c := AcquireCtx(&fc)
			defer ReleaseCtx(c)
			p.Serve(c)
			if got := strings.Join(log, " "); got != tt.want {
				t.Errorf("phases %q, want %q", got, tt.want)
			}
			if fc.Response.StatusCode() != 500 {
				t.Errorf("status %d, want 500", fc.Response.StatusCode())
			}
			if _, ok := c.Failure.(*PanicError); !ok {
				t.Errorf("failure %v is not a *PanicError", c.Failure)
			}
		})
	}
}

func TestPanicBecomes500(t *testing.T) {
	s := testServer(t, Stage{Kind: "panicky", Filter: panicky{}})
	fc := newRequestCtx("GET", "/")
	s.handle(fc)
	if fc.Response.StatusCode() != 500 {
		t.Errorf("status = %d, want 500", fc.Response.StatusCode())
	}
	if strings.Contains(string(fc.Response.Body()), "boom") {
		t.Errorf("the panic value leaked into the response: %q", fc.Response.Body())
	}
	if s.Gateway().InFlight() != 0 {
		t.Errorf("in-flight count = %d after a panic, want 0", s.Gateway().InFlight())
	}
}

func BenchmarkHandlerEmptyPipeline(b *testing.B) {
	s := testServer(b)
	fc := newRequestCtx("GET", "/v1/items?x=1")
	b.ReportAllocs()
	for b.Loop() {
		fc.Response.Reset()
		s.handle(fc)
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	raw := []byte("/v1/%61dmin//items/./x/../y")
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = NormalizePath(buf[:0], raw)
	}
}
