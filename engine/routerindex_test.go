package engine

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// naiveRoute is the documented precedence written as a scan over every pipeline, to check the
// index against.
func naiveRoute(ps []*Pipeline, c *Ctx) *Pipeline {
	host := strings.ToLower(string(stripPort(c.Request.Header.Host())))
	type rank struct {
		hostClass, wildLen, prefixLen, regex, preds, order int
	}
	var best *Pipeline
	var bestRank rank
	less := func(a, b rank) bool { // a before b
		for _, d := range [][2]int{{a.hostClass, b.hostClass}, {-a.wildLen, -b.wildLen}, {-a.prefixLen, -b.prefixLen}, {-a.regex, -b.regex}, {-a.preds, -b.preds}, {a.order, b.order}} {
			if d[0] != d[1] {
				return d[0] < d[1]
			}
		}
		return false
	}
	for i, p := range ps {
		m := &p.Match
		if !strings.HasPrefix(string(c.Path), m.PathPrefix) {
			continue
		}
		// One pipeline may be reached through several of its hosts: its best one counts.
		r := rank{hostClass: 3, prefixLen: len(m.PathPrefix), preds: len(m.Headers), order: i}
		if len(m.Hosts) == 0 {
			r.hostClass = 2
		}
		for _, h := range m.Hosts {
			h = strings.ToLower(h)
			switch {
			case h == host:
				r.hostClass, r.wildLen = 0, 0
			case strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) && len(host) > len(h)-1 && r.hostClass > 0:
				if r.hostClass == 3 || len(h) > r.wildLen {
					r.hostClass, r.wildLen = 1, len(h)
				}
			}
		}
		if r.hostClass == 3 {
			continue
		}
		if len(m.Methods) > 0 && !slices.Contains(m.Methods, string(c.Request.Header.Method())) {
			continue
		}
		if m.PathRegex != "" {
			if !regexp.MustCompile(m.PathRegex).Match(c.Path) {
				continue
			}
			r.regex = 1
		}
		ok := true
		for _, h := range m.Headers {
			if string(c.Request.Header.Peek(h.Name)) != *h.Exact || c.Request.Header.Peek(h.Name) == nil {
				ok = false
			}
		}
		if !ok {
			continue
		}
		if best == nil || less(r, bestRank) {
			best, bestRank = p, r
		}
	}
	return best
}

// TestRouterIndexAgreesWithScan routes random requests among random pipelines with the index and
// with a plain scan of the documented precedence.
func TestRouterIndexAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(30, 1))
	hosts := []string{"a.example.com", "b.example.com", "*.example.com", "*.eu.example.com", "x.eu.example.com", "other.org"}
	prefixes := []string{"/", "/a", "/a/", "/a/b", "/ab", "/b/", "/a/b/c"}
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	matched := 0
	for round := range 200 {
		var ps []*Pipeline
		for i := range 1 + rng.IntN(12) {
			m := MatchConfig{PathPrefix: pick(prefixes)}
			for range rng.IntN(3) {
				m.Hosts = append(m.Hosts, pick(hosts))
			}
			if rng.IntN(4) == 0 {
				m.Methods = []string{"GET"}
			}
			if rng.IntN(5) == 0 {
				m.PathRegex = "^/a/b"
			}
			for j := range rng.IntN(3) {
				m.Headers = append(m.Headers, ValueMatch{Name: fmt.Sprint("x-h", j), Exact: strp("1")})
			}
			ps = append(ps, routePipe(fmt.Sprint("p", i), m))
		}
		r := NewRouter(ps)
		for range 50 {
			var hdrs []string
			for j := range 3 {
				if rng.IntN(2) == 0 {
					hdrs = append(hdrs, fmt.Sprint("X-H", j), "1")
				}
			}
			host := pick([]string{"a.example.com", "B.EXAMPLE.com:8080", "c.example.com", "x.eu.example.com", "y.eu.example.com", "example.com", "other.org", "none.net"})
			path := pick([]string{"/", "/a", "/a/", "/a/b", "/a/b/c/d", "/ab", "/abc", "/b/x", "/c"})
			method := pick([]string{"GET", "POST"})
			req := routeReq(method, host, path, hdrs...)
			c := &Ctx{Request: req, Path: []byte(path)}
			got, want := r.Route(c), naiveRoute(ps, c)
			if want != nil {
				matched++
			}
			if got != want {
				name := func(p *Pipeline) string {
					if p == nil {
						return "none"
					}
					return fmt.Sprintf("%s %+v", p.Name, p.Match)
				}
				t.Fatalf("round %d: %s %s%s %v: index chose %s, the scan %s", round, method, host, path, hdrs, name(got), name(want))
			}
		}
	}
	if matched < 2000 {
		t.Errorf("only %d of 10,000 requests matched a pipeline: the comparison says little", matched)
	}
}
