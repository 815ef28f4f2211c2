package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

func routePipe(name string, m MatchConfig) *Pipeline {
	return NewPipeline(name, m, "", nil, TerminalFunc(func(*Ctx) {}))
}

// routeReq builds a request; headers are name, value pairs.
func routeReq(method, host, uri string, headers ...string) *fasthttp.Request {
	req := new(fasthttp.Request)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost(host)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return req
}

func routeName(r *Router, listener string, req *fasthttp.Request) string {
	c := &Ctx{Request: req, Listener: listener, Path: NormalizePath(nil, []byte(RawPathOf(req)))}
	p := r.Route(c)
	if p == nil {
		return ""
	}
	return p.Name
}

// RawPathOf is the raw path of req's request-target, for tests.
func RawPathOf(req *fasthttp.Request) string {
	raw, _ := RawPath(req)
	return string(raw)
}

func TestRouterPrecedence(t *testing.T) {
	r := NewRouter([]*Pipeline{
		routePipe("any-root", MatchConfig{PathPrefix: "/"}),
		routePipe("any-api", MatchConfig{PathPrefix: "/api/"}),
		routePipe("any-api-regex", MatchConfig{PathPrefix: "/api/", PathRegex: `^/api/v[0-9]+/`}),
		routePipe("any-api-canary", MatchConfig{PathPrefix: "/api/", Headers: []ValueMatch{{Name: "X-Canary", Exact: strp("1")}}}),
		routePipe("any-api-canary2", MatchConfig{PathPrefix: "/api/", Headers: []ValueMatch{{Name: "x-canary", Exact: strp("1")}},
			Cookies: []ValueMatch{{Name: "beta", Present: boolp(true)}}}),
		routePipe("exact-root", MatchConfig{PathPrefix: "/", Hosts: []string{"shop.example.com"}}),
		routePipe("wild-root", MatchConfig{PathPrefix: "/", Hosts: []string{"*.example.com"}}),
		routePipe("wild-deeper", MatchConfig{PathPrefix: "/", Hosts: []string{"*.eu.example.com"}}),
		routePipe("wild-post", MatchConfig{PathPrefix: "/x/", Hosts: []string{"*.example.com"}, Methods: []string{"POST"}}),
		routePipe("query", MatchConfig{PathPrefix: "/q", Query: []ValueMatch{{Name: "debug", Prefix: strp("y")}}}),
		routePipe("no-header", MatchConfig{PathPrefix: "/q", Headers: []ValueMatch{{Name: "authorization", Present: boolp(false)}}}),
		routePipe("lis", MatchConfig{PathPrefix: "/q", Listeners: []string{"internal"}}),
		routePipe("hregex", MatchConfig{PathPrefix: "/h", Headers: []ValueMatch{{Name: "user-agent", Regex: strp(`(?i)bot`)}}}),
	})
	tests := []struct {
		name, listener string
		req            *fasthttp.Request
		want           string
	}{
		{"longest prefix", "", routeReq("GET", "a.org", "/api/items"), "any-api"},
		{"path regex beats none", "", routeReq("GET", "a.org", "/api/v2/items"), "any-api-regex"},
		{"regex beats predicates", "", routeReq("GET", "a.org", "/api/v2/items", "x-canary", "1"), "any-api-regex"},
		{"header predicate", "", routeReq("GET", "a.org", "/api/items", "X-Canary", "1"), "any-api-canary"},
		{"header value differs", "", routeReq("GET", "a.org", "/api/items", "X-Canary", "2"), "any-api"},
		{"more predicates win", "", routeReq("GET", "a.org", "/api/items", "X-Canary", "1", "Cookie", "a=b; beta=on"), "any-api-canary2"},
		{"exact host beats longer prefix", "", routeReq("GET", "shop.example.com", "/api/items"), "exact-root"},
		{"exact host case", "", routeReq("GET", "SHOP.Example.com:8443", "/api/items"), "exact-root"},
		{"wildcard beats any host", "", routeReq("GET", "www.example.com", "/api/items"), "wild-root"},
		{"longest wildcard", "", routeReq("GET", "a.eu.example.com", "/api/items"), "wild-deeper"},
		{"wildcard needs a label", "", routeReq("GET", "example.com", "/api/items"), "any-api"},
		{"method falls back to shorter prefix", "", routeReq("GET", "www.example.com", "/x/1"), "wild-root"},
		{"method admits", "", routeReq("POST", "www.example.com", "/x/1"), "wild-post"},
		{"query prefix", "", routeReq("GET", "a.org", "/q?a=1&debug=yes"), "query"},
		{"query other value, header absent", "", routeReq("GET", "a.org", "/q?debug=no"), "no-header"},
		{"header present: not absent", "", routeReq("GET", "a.org", "/q", "Authorization", "x"), "any-root"},
		{"listener", "internal", routeReq("GET", "a.org", "/q", "Authorization", "x"), "lis"},
		{"header regex", "", routeReq("GET", "a.org", "/h", "User-Agent", "GoogleBot/2"), "hregex"},
		{"header regex misses", "", routeReq("GET", "a.org", "/h", "User-Agent", "curl"), "any-root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := routeName(r, tt.listener, tt.req); got != tt.want {
				t.Errorf("routed to %q, want %q", got, tt.want)
			}
		})
	}
	// Without a request (Match), pipelines with predicates never match.
	if p := r.Match([]byte("a.org"), []byte("/h"), []byte("GET")); p == nil || p.Name != "any-root" {
		t.Errorf("Match without predicates = %v, want any-root", p)
	}
}

var testRouteKey = NewRouteKey("test.variant")

// TestRouteKeyPredicate: a native filter's route key selects the pipeline, and a routed_only
// pipeline admits only a request a route block routed.
func TestRouteKeyPredicate(t *testing.T) {
	r := NewRouter([]*Pipeline{
		routePipe("entry", MatchConfig{PathPrefix: "/"}),
		routePipe("b", MatchConfig{PathPrefix: "/", RoutedOnly: true, Keys: []ValueMatch{{Name: "test.variant", Exact: strp("b")}}}),
		routePipe("b-prefix", MatchConfig{PathPrefix: "/", RoutedOnly: true, Keys: []ValueMatch{{Name: "test.variant", Prefix: strp("be")}}}),
	})
	c := &Ctx{Request: routeReq("GET", "a.org", "/x"), Path: []byte("/x")}
	testRouteKey.Set(c, "b")
	if p := r.Route(c); p.Name != "entry" {
		t.Errorf("a client's request went to %q, want entry (b is routed_only)", p.Name)
	}
	c.routeHops = 1
	if p := r.Route(c); p.Name != "b" {
		t.Errorf("routed with key b: %q, want b", p.Name)
	}
	testRouteKey.Set(c, "beta")
	if p := r.Route(c); p.Name != "b-prefix" {
		t.Errorf("routed with key beta: %q, want b-prefix", p.Name)
	}
	if !raceEnabled {
		if n := testing.AllocsPerRun(100, func() { r.Route(c) }); n != 0 {
			t.Errorf("Route on a key allocates %v times", n)
		}
	}
	if err := (&MatchConfig{PathPrefix: "/", Keys: []ValueMatch{{Name: "test.variantt", Exact: strp("b")}}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), `did you mean "test.variant"`) {
		t.Errorf("unknown key: %v, want a did-you-mean error", err)
	}
}

func TestRouterTreeSplits(t *testing.T) {
	// Prefixes that share leading bytes split the tree's edges in every order.
	prefixes := []string{"/abc", "/a", "/abd", "/ab", "/b", "/abcdef", "/"}
	var ps []*Pipeline
	for _, pre := range prefixes {
		ps = append(ps, routePipe(pre, MatchConfig{PathPrefix: pre}))
	}
	r := NewRouter(ps)
	for path, want := range map[string]string{
		"/abcde": "/abc", "/abcdefg": "/abcdef", "/abx": "/ab", "/abd": "/abd", "/a": "/a",
		"/ax": "/a", "/bb": "/b", "/c": "/", "/": "/",
	} {
		p := r.Match([]byte("h"), []byte(path), []byte("GET"))
		if p == nil || p.Name != want {
			t.Errorf("Match(%q) = %v, want %q", path, p, want)
		}
	}
}

func TestQueryParam(t *testing.T) {
	for _, tt := range []struct {
		uri, name, want string
		found           bool
	}{
		{"/p?a=1&b=2", "b", "2", true},
		{"/p?a=1&b", "b", "", true},
		{"/p?ab=1", "a", "", false},
		{"/p", "a", "", false},
		{"/p?a=%20x", "a", "%20x", true},
		{"/p?x=1&a=1&a=2", "a", "1", true},
	} {
		v, found := queryParam([]byte(tt.uri), []byte(tt.name))
		if string(v) != tt.want || found != tt.found {
			t.Errorf("queryParam(%q, %q) = %q, %v; want %q, %v", tt.uri, tt.name, v, found, tt.want, tt.found)
		}
	}
}

func TestValueMatchValidate(t *testing.T) {
	for _, v := range []ValueMatch{
		{Name: "x"},
		{Name: "x", Exact: strp("1"), Prefix: strp("1")},
		{Name: "x", Regex: strp("(")},
	} {
		if v.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", v)
		}
	}
	if err := (&ValueMatch{Name: "x", Present: boolp(false)}).Validate(); err != nil {
		t.Errorf("absent: %v", err)
	}
}

// manyPipelines returns n pipelines that differ by host and path prefix, each with methods, as
// a large configuration would.
func manyPipelines(n int) []*Pipeline {
	ps := make([]*Pipeline, 0, n+1)
	for i := range n {
		ps = append(ps, routePipe(fmt.Sprint("p", i), MatchConfig{
			PathPrefix: fmt.Sprintf("/svc%d/v1/", i),
			Hosts:      []string{fmt.Sprintf("h%d.example.com", i%(n/10+1))},
			Methods:    []string{"GET", "POST"},
		}))
	}
	ps = append(ps, routePipe("fallback", MatchConfig{PathPrefix: "/"}))
	return ps
}

func TestRouterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	ps := manyPipelines(1000)
	ps = append(ps,
		routePipe("canary", MatchConfig{PathPrefix: "/api/", Headers: []ValueMatch{{Name: "x-canary", Regex: strp("^1$")}},
			Cookies: []ValueMatch{{Name: "ab", Exact: strp("b")}}, Query: []ValueMatch{{Name: "v", Present: boolp(true)}}}),
		routePipe("re", MatchConfig{PathPrefix: "/api/", PathRegex: "^/api/v[0-9]+/"}),
		routePipe("wild", MatchConfig{PathPrefix: "/", Hosts: []string{"*.example.org"}}),
	)
	r := NewRouter(ps)
	for _, tt := range []struct {
		req  *fasthttp.Request
		want string
	}{
		{routeReq("GET", "h2.example.com", "/svc507/v1/items"), "p507"},
		{routeReq("GET", "H2.Example.com:80", "/svc507/v1/items"), "p507"},
		{routeReq("GET", "a.b.example.org", "/x"), "wild"},
		{routeReq("GET", "other.example.net", "/nothing/here"), "fallback"},
		{routeReq("GET", "x", "/api/v3/x?v=1", "X-Canary", "1", "Cookie", "ab=b"), "re"},
		{routeReq("GET", "x", "/api/x?v=1", "X-Canary", "1", "Cookie", "ab=b"), "canary"},
	} {
		c := &Ctx{Request: tt.req, Path: NormalizePath(nil, []byte(RawPathOf(tt.req)))}
		if p := r.Route(c); p == nil || p.Name != tt.want {
			t.Fatalf("Route(%s) = %v, want %s", tt.req.URI(), p, tt.want)
		}
		if n := testing.AllocsPerRun(1000, func() { r.Route(c) }); n != 0 {
			t.Errorf("Route(%s) allocates %v times, want 0", tt.req.URI(), n)
		}
	}
}

// BenchmarkRouter routes among 10, 1,000 and 10,000 pipelines that differ by host and path
// prefix (flat: the index, not a scan), and on one header predicate.
func BenchmarkRouter(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		r := NewRouter(manyPipelines(n))
		last := n - 1
		host := []byte(fmt.Sprintf("h%d.example.com", last%(n/10+1)))
		path := []byte(fmt.Sprintf("/svc%d/v1/items/42", last))
		b.Run(fmt.Sprintf("pipelines=%d", n), func(b *testing.B) {
			get := []byte("GET")
			b.ReportAllocs()
			for b.Loop() {
				if r.Match(host, path, get) == nil {
					b.Fatal("no match")
				}
			}
		})
		b.Run(fmt.Sprintf("pipelines=%d/fallback", n), func(b *testing.B) {
			host, path, get := []byte("other.example.net"), []byte("/nothing/here"), []byte("GET")
			b.ReportAllocs()
			for b.Loop() {
				if r.Match(host, path, get) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
	b.Run("header-predicate", func(b *testing.B) {
		r := NewRouter([]*Pipeline{
			routePipe("stable", MatchConfig{PathPrefix: "/api/"}),
			routePipe("canary", MatchConfig{PathPrefix: "/api/", Headers: []ValueMatch{{Name: "x-canary", Exact: strp("1")}}}),
		})
		req := routeReq("GET", "api.example.com", "/api/items", "Accept", "*/*", "User-Agent", "bench", "X-Canary", "1")
		c := &Ctx{Request: req, Path: []byte("/api/items")}
		b.ReportAllocs()
		for b.Loop() {
			if r.Route(c).Name != "canary" {
				b.Fatal("wrong pipeline")
			}
		}
	})
}

func TestValueMatchText(t *testing.T) {
	for _, tt := range []struct {
		v    ValueMatch
		want string
	}{
		{ValueMatch{Name: "x-canary", Exact: strp("1")}, `x-canary exact "1"`},
		{ValueMatch{Name: "Authorization", Prefix: strp("Bearer abc")}, `Authorization prefix "[redacted]"`},
		{ValueMatch{Name: "session", Regex: strp("^s3cr3t")}, `session regex "[redacted]"`},
		{ValueMatch{Name: "x-debug", Present: boolp(false)}, `x-debug present = false`},
	} {
		b, _ := tt.v.MarshalText()
		if string(b) != tt.want {
			t.Errorf("MarshalText = %s, want %s", b, tt.want)
		}
	}
}
