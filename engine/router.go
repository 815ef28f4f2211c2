package engine

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Router picks the pipeline for a request. Precedence, first difference wins:
//
//  1. the host: a pipeline listing the request's host exactly, then one listing a wildcard
//     ("*.example.com") that covers it (the longest wildcard first), then one listing no host;
//  2. the longest path_prefix that the normalized path starts with;
//  3. a pipeline with a path_regex before one without;
//  4. more header, query and cookie predicates before fewer;
//  5. declaration order.
//
// methods and listeners only admit or refuse. The router is an index: a map from exact host,
// a map from wildcard suffix and the no-host set, each a radix tree of path prefixes whose nodes
// hold their pipelines in the order above. A lookup costs a map lookup per host class, a walk
// down the tree (the path's length, not the number of pipelines) and the predicates of the
// pipelines that tie on host and prefix; it allocates nothing.
type Router struct {
	exact map[string]*prefixTree
	wild  map[string]*prefixTree // key: the suffix with its dot, ".example.com"
	any   *prefixTree
}

// candidate is a pipeline's entry in a tree node.
type candidate struct {
	p         *Pipeline
	order     int      // declaration order
	methods   [][]byte // empty = any method
	listeners []string // empty = any listener
	routed    bool     // routed_only: only requests a route block routed
	re        *regexp.Regexp
	preds     []predicate
}

// NewRouter builds a router; pipelines are given in declaration order. It panics on a
// path_regex or predicate that does not compile: MatchConfig.Validate refuses those first.
func NewRouter(pipelines []*Pipeline) *Router {
	r := &Router{exact: map[string]*prefixTree{}, wild: map[string]*prefixTree{}, any: newPrefixTree()}
	tree := func(m map[string]*prefixTree, k string) *prefixTree {
		t := m[k]
		if t == nil {
			t = newPrefixTree()
			m[k] = t
		}
		return t
	}
	for i, p := range pipelines {
		cand, err := newCandidate(p, i)
		if err != nil {
			panic(fmt.Sprintf("engine: pipeline %q: %v", p.Name, err))
		}
		prefix := []byte(p.Match.PathPrefix)
		if len(p.Match.Hosts) == 0 {
			r.any.insert(prefix, cand)
			continue
		}
		for _, h := range p.Match.Hosts {
			// Requests' hosts are canonical (admission.go): no trailing dot here either.
			h = strings.TrimSuffix(strings.ToLower(h), ".")
			if strings.HasPrefix(h, "*.") && len(h) > 2 {
				tree(r.wild, h[1:]).insert(prefix, cand)
			} else {
				tree(r.exact, h).insert(prefix, cand)
			}
		}
	}
	r.any.finish()
	for _, t := range r.exact {
		t.finish()
	}
	for _, t := range r.wild {
		t.finish()
	}
	return r
}

func newCandidate(p *Pipeline, order int) (*candidate, error) {
	c := &candidate{p: p, order: order, listeners: p.Match.Listeners, routed: p.Match.RoutedOnly}
	for _, m := range p.Match.Methods {
		c.methods = append(c.methods, []byte(m))
	}
	if p.Match.PathRegex != "" {
		re, err := regexp.Compile(p.Match.PathRegex)
		if err != nil {
			return nil, fmt.Errorf("path_regex: %w", err)
		}
		c.re = re
	}
	for _, set := range []struct {
		in   uint8
		list []ValueMatch
	}{{inHeader, p.Match.Headers}, {inQuery, p.Match.Query}, {inCookie, p.Match.Cookies}, {inKey, p.Match.Keys}} {
		for _, v := range set.list {
			pr, err := compilePredicate(set.in, v)
			if err != nil {
				return nil, err
			}
			c.preds = append(c.preds, pr)
		}
	}
	return c, nil
}

// before orders candidates with the same host class and prefix: path_regex first, then more
// predicates, then declaration order.
func (c *candidate) before(d *candidate) int {
	if (c.re != nil) != (d.re != nil) {
		if c.re != nil {
			return -1
		}
		return 1
	}
	if len(c.preds) != len(d.preds) {
		return len(d.preds) - len(c.preds)
	}
	return c.order - d.order
}

// admits reports whether the candidate takes the request. c nil (Match, MatchListener) admits
// only candidates without predicates and not routed_only; a routed_only candidate admits only
// a request a route block routed.
func (cand *candidate) admits(listener string, path, method []byte, c *Ctx) bool {
	if cand.routed && (c == nil || c.routeHops == 0) {
		return false
	}
	if len(cand.listeners) > 0 && !slices.Contains(cand.listeners, listener) {
		return false
	}
	if len(cand.methods) > 0 && !containsBytes(cand.methods, method) {
		return false
	}
	if cand.re != nil && !cand.re.Match(path) {
		return false
	}
	if len(cand.preds) > 0 && c == nil {
		return false
	}
	for i := range cand.preds {
		if !cand.preds[i].eval(c) {
			return false
		}
	}
	return true
}

// Route returns the pipeline for c's request (listener, Host, normalized path, method and the
// request's headers, query and cookies), or nil. It does not allocate.
func (r *Router) Route(c *Ctx) *Pipeline {
	h := &c.Request.Header
	return r.lookup(c.Listener, h.Host(), c.Path, h.Method(), c)
}

// Match returns the pipeline for host (the Host header, port allowed), the normalized path and
// the method, or nil, among the pipelines that are not restricted to listeners and have no
// header, query or cookie predicates. It does not allocate.
func (r *Router) Match(host, path, method []byte) *Pipeline {
	return r.lookup("", host, path, method, nil)
}

// MatchListener is Match for a request that came through the named listener: pipelines whose
// match block lists listeners serve only requests from those. It does not allocate.
func (r *Router) MatchListener(listener string, host, path, method []byte) *Pipeline {
	return r.lookup(listener, host, path, method, nil)
}

func (r *Router) lookup(listener string, host, path, method []byte, c *Ctx) *Pipeline {
	if len(r.exact) == 0 && len(r.wild) == 0 {
		return r.any.lookup(listener, path, method, c) // no pipeline lists hosts
	}
	host = stripPort(host)
	if hasUpper(host) { // rare: admission canonicalises hosts to lower case
		return r.lookupLower(listener, host, path, method, c)
	}
	return r.lookupHost(listener, host, path, method, c)
}

// lookupLower is lookup for a host with upper-case letters, lower-cased on the stack.
func (r *Router) lookupLower(listener string, host, path, method []byte, c *Ctx) *Pipeline {
	var low [256]byte
	if len(host) > len(low) {
		return r.any.lookup(listener, path, method, c) // longer than any DNS name
	}
	for i, b := range host {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		low[i] = b
	}
	return r.lookupHost(listener, low[:len(host)], path, method, c)
}

func (r *Router) lookupHost(listener string, host, path, method []byte, c *Ctx) *Pipeline {
	if t := r.exact[string(host)]; t != nil {
		if p := t.lookup(listener, path, method, c); p != nil {
			return p
		}
	}
	if len(r.wild) > 0 {
		// Longest wildcard first: the suffix from each dot, left to right. The label before
		// the dot must not be empty ("*.example.com" does not cover "example.com").
		for i := 1; i < len(host); i++ {
			if host[i] != '.' {
				continue
			}
			if t := r.wild[string(host[i:])]; t != nil {
				if p := t.lookup(listener, path, method, c); p != nil {
					return p
				}
			}
		}
	}
	return r.any.lookup(listener, path, method, c)
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// prefixTree is a radix tree of path prefixes (bytes, not segments: "/api" covers "/apiv2").
type prefixTree struct{ root *prefixNode }

type prefixNode struct {
	label    []byte // the edge from the parent
	first    []byte // first byte of each child's label, for the walk
	children []*prefixNode
	cands    []*candidate // pipelines whose prefix ends here, in precedence order
	up       *prefixNode  // the nearest ancestor with candidates
}

func newPrefixTree() *prefixTree { return &prefixTree{root: &prefixNode{}} }

func (t *prefixTree) insert(key []byte, c *candidate) {
	n := t.root
	for len(key) > 0 {
		i := bytes.IndexByte(n.first, key[0])
		if i < 0 {
			n.first = append(n.first, key[0])
			n.children = append(n.children, &prefixNode{label: key, cands: []*candidate{c}})
			return
		}
		child := n.children[i]
		common := 0
		for common < len(key) && common < len(child.label) && key[common] == child.label[common] {
			common++
		}
		if common < len(child.label) {
			// Split the edge: a node for the common part, the old child below it.
			mid := &prefixNode{label: child.label[:common], first: []byte{child.label[common]}, children: []*prefixNode{child}}
			child.label = child.label[common:]
			n.children[i] = mid
			child = mid
		}
		n, key = child, key[common:]
	}
	n.cands = append(n.cands, c)
}

// child returns the child whose label starts with b, or nil. A loop, not bytes.IndexByte: nodes
// have few children, and the call would cost more than the scan.
func (n *prefixNode) child(b byte) *prefixNode {
	for i, f := range n.first {
		if f == b {
			return n.children[i]
		}
	}
	return nil
}

// finish orders each node's candidates and links every node to its nearest ancestor with
// candidates.
func (t *prefixTree) finish() {
	var walk func(n, up *prefixNode)
	walk = func(n, up *prefixNode) {
		slices.SortStableFunc(n.cands, (*candidate).before)
		n.up = up
		if len(n.cands) > 0 {
			up = n
		}
		for _, c := range n.children {
			walk(c, up)
		}
	}
	walk(t.root, nil)
}

// lookup walks down to the longest prefix of path with candidates, then tries candidates from
// there back up to shorter prefixes.
func (t *prefixTree) lookup(listener string, path, method []byte, c *Ctx) *Pipeline {
	n := t.root
	var best *prefixNode
	if len(n.cands) > 0 {
		best = n
	}
	for rest := path; len(rest) > 0; {
		child := n.child(rest[0])
		if child == nil {
			break
		}
		if !bytes.HasPrefix(rest, child.label) {
			break
		}
		rest, n = rest[len(child.label):], child
		if len(n.cands) > 0 {
			best = n
		}
	}
	for ; best != nil; best = best.up {
		for _, cand := range best.cands {
			if cand.admits(listener, path, method, c) {
				return cand.p
			}
		}
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
