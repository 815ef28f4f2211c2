package engine

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-gateway/sluice/engine/secret"
)

// ValueMatch is one request predicate of a match block: a `header "NAME" { … }`,
// `query "NAME" { … }`, `cookie "NAME" { … }` or `key "NAME" { … }` block. Exactly one of exact, prefix, regex and
// present is set; present = false means the value must be absent.
type ValueMatch struct {
	Name    string  `hcl:"name,label" json:"name"`
	Exact   *string `hcl:"exact,optional" json:"exact,omitempty"`
	Prefix  *string `hcl:"prefix,optional" json:"prefix,omitempty"`
	Regex   *string `hcl:"regex,optional" json:"regex,omitempty"`
	Present *bool   `hcl:"present,optional" json:"present,omitempty"`
}

// Validate checks a predicate: one test, and a regular expression that compiles (RE2).
func (v *ValueMatch) Validate() error {
	n := 0
	for _, set := range []bool{v.Exact != nil, v.Prefix != nil, v.Regex != nil, v.Present != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%q: set exactly one of exact, prefix, regex or present (present = false: must be absent)", v.Name)
	}
	if v.Regex != nil {
		if _, err := regexp.Compile(*v.Regex); err != nil {
			return &FieldError{Field: "regex", Err: fmt.Errorf("invalid regular expression (RE2 syntax): %w", err)}
		}
	}
	return nil
}

// MarshalText writes the predicate as one line for /config and logs, such as
// `x-canary exact "1"`, hiding the value when the name suggests a secret (an "authorization"
// header, a "session" cookie): a match on a credential must not show it.
func (v ValueMatch) MarshalText() ([]byte, error) {
	test, val := "", ""
	switch {
	case v.Exact != nil:
		test, val = "exact", *v.Exact
	case v.Prefix != nil:
		test, val = "prefix", *v.Prefix
	case v.Regex != nil:
		test, val = "regex", *v.Regex
	case v.Present != nil:
		return fmt.Appendf(nil, "%s present = %v", v.Name, *v.Present), nil
	}
	if secret.Name(v.Name) {
		val = secret.Marker
	}
	return fmt.Appendf(nil, "%s %s %q", v.Name, test, val), nil
}

// predicate kinds: where a ValueMatch reads its value.
const (
	inHeader = iota
	inQuery
	inCookie
	inKey
)

// predicate is a compiled ValueMatch.
type predicate struct {
	in      uint8
	name    []byte
	op      uint8 // opExact, opPrefix, opRegex, opPresent, opAbsent
	value   []byte
	re      *regexp.Regexp
	nameStr string // the header or cookie name, for fasthttp's string lookups
	// header is a header's name as fasthttp stores it ("X-Canary"), made once: its Peek skips
	// fasthttp's copy and case-folding of the name on every request (about 25 instructions a
	// byte; see HeaderName).
	header HeaderName
	key    Key[string]
}

const (
	opExact = iota
	opPrefix
	opRegex
	opPresent
	opAbsent
)

func compilePredicate(in uint8, v ValueMatch) (predicate, error) {
	p := predicate{in: in, name: []byte(v.Name), nameStr: v.Name}
	if in == inHeader {
		p.header = NewHeaderName(v.Name)
	}
	if in == inKey {
		k, ok := RouteKeyNamed(v.Name)
		if !ok {
			return p, fmt.Errorf("key %q: no such route key", v.Name)
		}
		p.key = k
	}
	switch {
	case v.Exact != nil:
		p.op, p.value = opExact, []byte(*v.Exact)
	case v.Prefix != nil:
		p.op, p.value = opPrefix, []byte(*v.Prefix)
	case v.Regex != nil:
		re, err := regexp.Compile(*v.Regex)
		if err != nil {
			return p, fmt.Errorf("%s %q: %w", [...]string{"header", "query", "cookie", "key"}[in], v.Name, err)
		}
		p.op, p.re = opRegex, re
	case v.Present != nil && *v.Present:
		p.op = opPresent
	case v.Present != nil:
		p.op = opAbsent
	default:
		return p, fmt.Errorf("%q: no test set", v.Name)
	}
	return p, nil
}

// test applies the predicate to a value; found is false when the request has none.
func (p *predicate) test(v []byte, found bool) bool {
	switch p.op {
	case opAbsent:
		return !found
	case opPresent:
		return found
	}
	if !found {
		return false
	}
	switch p.op {
	case opExact:
		return bytes.Equal(v, p.value)
	case opPrefix:
		return bytes.HasPrefix(v, p.value)
	default:
		return p.re.Match(v)
	}
}

// eval applies the predicate to c's request. A header is the first field line of that name;
// a query parameter the first of that name, compared raw (still percent-encoded); a cookie the
// first of that name in the Cookie header; a key the value a filter set (RouteKey). None of it
// allocates.
func (p *predicate) eval(c *Ctx) bool {
	req := c.Request
	switch p.in {
	case inHeader:
		v := p.header.Peek(&req.Header)
		return p.test(v, v != nil)
	case inCookie:
		v := req.Header.Cookie(p.nameStr)
		return p.test(v, v != nil)
	case inKey:
		v, ok := p.key.Get(c)
		return p.testString(v, ok)
	default:
		v, found := queryParam(req.Header.RequestURI(), p.name)
		return p.test(v, found)
	}
}

// testString is test for a string value.
func (p *predicate) testString(v string, found bool) bool {
	switch p.op {
	case opAbsent:
		return !found
	case opPresent:
		return found
	}
	if !found {
		return false
	}
	switch p.op {
	case opExact: // string(bytes) in a comparison does not allocate
		return v == string(p.value)
	case opPrefix:
		return len(v) >= len(p.value) && v[:len(p.value)] == string(p.value)
	default:
		return p.re.MatchString(v)
	}
}

// queryParam finds the first parameter name in the request-target's query, compared as written
// (no percent-decoding, so that what routes is what the upstream receives).
func queryParam(uri, name []byte) ([]byte, bool) {
	i := bytes.IndexByte(uri, '?')
	if i < 0 {
		return nil, false
	}
	q := uri[i+1:]
	if j := bytes.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for len(q) > 0 {
		pair := q
		if j := bytes.IndexByte(q, '&'); j >= 0 {
			pair, q = q[:j], q[j+1:]
		} else {
			q = nil
		}
		k, v := pair, []byte{}
		if j := bytes.IndexByte(pair, '='); j >= 0 {
			k, v = pair[:j], pair[j+1:]
		}
		if bytes.Equal(k, name) {
			return v, true
		}
	}
	return nil, false
}

// validatePredicates checks the predicate blocks and path_regex of a match block.
func (m *MatchConfig) validatePredicates() []error {
	var errs []error
	if m.PathRegex != "" {
		if _, err := regexp.Compile(m.PathRegex); err != nil {
			errs = append(errs, FieldErr("path_regex", "invalid regular expression (RE2 syntax): %v", err))
		}
	}
	for _, set := range []struct {
		attr string
		list []ValueMatch
	}{{"header", m.Headers}, {"query", m.Query}, {"cookie", m.Cookies}, {"key", m.Keys}} {
		seen := map[string]bool{}
		for _, v := range set.list {
			key := v.Name
			if set.attr == "header" {
				if !validHeaderName(v.Name) {
					errs = append(errs, FieldErr(set.attr, "invalid header name %q", v.Name))
				}
				key = strings.ToLower(key)
			} else if v.Name == "" {
				errs = append(errs, FieldErr(set.attr, "the name must not be empty"))
			} else if _, ok := RouteKeyNamed(v.Name); set.attr == "key" && !ok {
				errs = append(errs, FieldErr(set.attr, "no route key named %q%s", v.Name, routeKeyHint(v.Name)))
			}
			if seen[key] {
				errs = append(errs, FieldErr(set.attr, "%q is tested twice: put both tests in one regex, or use separate pipelines", v.Name))
			}
			seen[key] = true
		}
	}
	return errs
}
