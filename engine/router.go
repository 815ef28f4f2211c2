package engine

import (
	"bytes"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-gateway/sluice/engine/ascii"
)

// Router picks the pipeline for a request: among pipelines whose hosts and methods admit the
// request, the one with the longest matching path prefix wins.
type Router struct {
	routes []route
}

type route struct {
	p       *Pipeline
	prefix  []byte
	hosts   [][]byte // lower-case; a leading "*." matches any subdomain; empty = any host
	methods [][]byte // empty = any method
	// listeners are the names of the listeners the pipeline serves; empty = any listener.
	listeners []string
}

// NewRouter builds a router. Pipelines are tried longest prefix first; among equal prefixes, in
// the order given.
func NewRouter(pipelines []*Pipeline) *Router {
	r := &Router{}
	for _, p := range pipelines {
		rt := route{p: p, prefix: []byte(p.Match.PathPrefix), listeners: p.Match.Listeners}
		for _, h := range p.Match.Hosts {
			// Requests' hosts are canonical (admission.go): no trailing dot here either.
			rt.hosts = append(rt.hosts, []byte(strings.TrimSuffix(strings.ToLower(h), ".")))
		}
		for _, m := range p.Match.Methods {
			rt.methods = append(rt.methods, []byte(m))
		}
		r.routes = append(r.routes, rt)
	}
	sort.SliceStable(r.routes, func(i, j int) bool { return len(r.routes[i].prefix) > len(r.routes[j].prefix) })
	return r
}

// Match returns the pipeline for host (the Host header, port allowed), the normalized path and
// the method, or nil, among the pipelines that are not restricted to listeners. It does not
// allocate.
func (r *Router) Match(host, path, method []byte) *Pipeline {
	return r.MatchListener("", host, path, method)
}

// MatchListener is Match for a request that came through the named listener: pipelines whose
// match block lists listeners serve only requests from those. It does not allocate.
func (r *Router) MatchListener(listener string, host, path, method []byte) *Pipeline {
	host = stripPort(host)
	for i := range r.routes {
		rt := &r.routes[i]
		if !bytes.HasPrefix(path, rt.prefix) {
			continue
		}
		if len(rt.listeners) > 0 && !slices.Contains(rt.listeners, listener) {
			continue
		}
		if len(rt.methods) > 0 && !containsBytes(rt.methods, method) {
			continue
		}
		if len(rt.hosts) > 0 && !matchHost(rt.hosts, host) {
			continue
		}
		return rt.p
	}
	return nil
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

func matchHost(hosts [][]byte, host []byte) bool {
	for _, h := range hosts {
		if len(h) > 2 && h[0] == '*' && h[1] == '.' {
			// "*.example.com" matches "a.example.com" but not "example.com".
			suffix := h[1:]
			if len(host) > len(suffix) && hasSuffixFold(host, suffix) {
				return true
			}
			continue
		}
		if ascii.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func hasSuffixFold(s, suffix []byte) bool {
	return ascii.EqualFold(s[len(s)-len(suffix):], suffix)
}

// stripPort removes ":port" from a Host value, keeping IPv6 brackets' content intact.
func stripPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}
