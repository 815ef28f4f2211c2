package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A small parser for the part of RFC 9651 (Structured Field Values) that the RateLimit fields
// use: a List of Items with Parameters, bare items being strings, tokens, integers, byte
// sequences and booleans. Tests use it to read the fields as a client would.

type sfItem struct {
	value  any // string (sf-string), sfToken, int64, sfBytes, bool
	params []sfParam
}

type sfParam struct {
	key   string
	value any
}

type (
	sfToken string
	sfBytes string
)

func (it sfItem) param(key string) (any, bool) {
	for _, p := range it.params {
		if p.key == key {
			return p.value, true
		}
	}
	return nil, false
}

type sfParser struct {
	s string
	i int
}

func parseSFList(s string) ([]sfItem, error) {
	p := &sfParser{s: s}
	p.skipSP()
	var out []sfItem
	if p.i == len(p.s) {
		return nil, nil
	}
	for {
		it, err := p.item()
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		p.skipOWS()
		if p.i == len(p.s) {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("at %d: want ',' between members, got %q", p.i, p.s[p.i])
		}
		p.i++
		p.skipOWS()
		if p.i == len(p.s) {
			return nil, fmt.Errorf("trailing comma")
		}
	}
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) item() (sfItem, error) {
	v, err := p.bare()
	if err != nil {
		return sfItem{}, err
	}
	it := sfItem{value: v}
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		k, err := p.key()
		if err != nil {
			return sfItem{}, err
		}
		var pv any = true
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if pv, err = p.bare(); err != nil {
				return sfItem{}, err
			}
		}
		it.params = append(it.params, sfParam{k, pv})
	}
	return it, nil
}

func (p *sfParser) key() (string, error) {
	start := p.i
	if p.i == len(p.s) || !(p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] == '*') {
		return "", fmt.Errorf("at %d: parameter key must start with a lower-case letter or '*'", p.i)
	}
	for p.i < len(p.s) && (p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= '0' && p.s[p.i] <= '9' || strings.IndexByte("_-.*", p.s[p.i]) >= 0) {
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) bare() (any, error) {
	if p.i == len(p.s) {
		return nil, fmt.Errorf("missing value at end")
	}
	c := p.s[p.i]
	switch {
	case c == '"':
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			switch ch := p.s[p.i]; {
			case ch == '\\':
				p.i++
				if p.i == len(p.s) || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
					return nil, fmt.Errorf("bad escape in string")
				}
				b.WriteByte(p.s[p.i])
			case ch == '"':
				p.i++
				return b.String(), nil
			case ch < 0x20 || ch >= 0x7f:
				return nil, fmt.Errorf("invalid character %q in string", ch)
			default:
				b.WriteByte(ch)
			}
		}
		return nil, fmt.Errorf("unterminated string")
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		p.i++
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i < len(p.s) && p.s[p.i] == '.' {
			return nil, fmt.Errorf("decimals are not used by these fields")
		}
		if p.i-start > 15+boolInt(c == '-') {
			return nil, fmt.Errorf("integer too long")
		}
		return strconv.ParseInt(p.s[start:p.i], 10, 64)
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return nil, fmt.Errorf("unterminated byte sequence")
		}
		v := p.s[p.i+1 : p.i+1+end]
		for i := 0; i < len(v); i++ {
			if !(v[i] >= 'A' && v[i] <= 'Z' || v[i] >= 'a' && v[i] <= 'z' || v[i] >= '0' && v[i] <= '9' || strings.IndexByte("+/=", v[i]) >= 0) {
				return nil, fmt.Errorf("invalid base64 character %q", v[i])
			}
		}
		p.i += end + 2
		return sfBytes(v), nil
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			return p.s[p.i-1] == '1', nil
		}
		return nil, fmt.Errorf("bad boolean")
	case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '*':
		start := p.i
		for p.i < len(p.s) && p.s[p.i] > ' ' && p.s[p.i] < 0x7f && strings.IndexByte("\"(),;<=>?@[\\]{}", p.s[p.i]) < 0 {
			p.i++
		}
		return sfToken(p.s[start:p.i]), nil
	}
	return nil, fmt.Errorf("at %d: unexpected %q", p.i, c)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkPolicyField applies the draft's rules for a RateLimit-Policy value (section 3).
func checkPolicyField(v string) ([]sfItem, error) {
	items, err := parseSFList(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	for _, it := range items {
		if _, ok := it.value.(string); !ok {
			return nil, fmt.Errorf("policy identifier %v is not a String", it.value)
		}
		q, ok := it.param("q")
		if n, isInt := q.(int64); !ok || !isInt || n < 0 {
			return nil, fmt.Errorf("q must be a non-negative Integer, got %v", q)
		}
		if w, ok := it.param("w"); ok {
			if n, isInt := w.(int64); !isInt || n <= 0 {
				return nil, fmt.Errorf("w must be a positive Integer, got %v", w)
			}
		}
		if qu, ok := it.param("qu"); ok {
			if _, isStr := qu.(string); !isStr {
				return nil, fmt.Errorf("qu must be a String")
			}
		}
		if pk, ok := it.param("pk"); ok {
			if _, isBytes := pk.(sfBytes); !isBytes {
				return nil, fmt.Errorf("pk must be a Byte Sequence")
			}
		}
	}
	return items, nil
}

// checkRateLimitField applies the draft's rules for a RateLimit value (section 4).
func checkRateLimitField(v string) ([]sfItem, error) {
	items, err := parseSFList(v)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if _, ok := it.value.(string); !ok {
			return nil, fmt.Errorf("policy identifier %v is not a String", it.value)
		}
		r, ok := it.param("r")
		if n, isInt := r.(int64); !ok || !isInt || n < 0 {
			return nil, fmt.Errorf("r must be a non-negative Integer, got %v", r)
		}
		if t, ok := it.param("t"); ok {
			if n, isInt := t.(int64); !isInt || n < 0 {
				return nil, fmt.Errorf("t must be a non-negative Integer, got %v", t)
			}
		}
		if pk, ok := it.param("pk"); ok {
			if _, isBytes := pk.(sfBytes); !isBytes {
				return nil, fmt.Errorf("pk must be a Byte Sequence")
			}
		}
	}
	return items, nil
}

// The field values of draft-ietf-httpapi-ratelimit-headers (sections 3.2, 4.2, 6, 7, 8.5 and
// appendix B): the checkers must accept them all, so they read the fields as the draft does.
var (
	draftPolicyExamples = []string{
		`"burst";q=100;w=60,"daily";q=1000;w=86400`,
		`"default";q=100;w=10`,
		`"permin";q=50;w=60,"perhr";q=1000;w=3600`,
		`"peruser";q=100;w=60;pk=:cHsdsRa894==:`,
		`"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:`,
		`"somepolicy";q=10000;w=1000`,
		`"basic";q=100;w=60`,
		`"fixedwindow";q=100;w=60`,
		`"dynamic";q=100;w=60`,
		`"dynamic";q=15;w=20`,
		`"hour";q=1000;w=3600, "day";q=5000;w=86400`,
	}
	draftRateLimitExamples = []string{
		`"default";r=50;t=30`,
		`"default";r=999;pk=:dHJpYWwxMjEzMjM=:`,
		`"default";r=300000000;t=60;pk=:QXBwLTk5OQ==:`,
		`"problemPolicy";r=0;t=10`,
		`"default";r=1;t=7`,
		`"daily";r=1;t=86400`,
		`"somepolicy";r=10000;t=10`,
		`"default";r=0;t=50`,
		`"default";r=0;t=48`,
		`"dayLimit";r=100;t=36000`,
		`"basic";r=60;t=58`,
		`"basic";r=20;t=56`,
		`"default";r=0;t=5`,
		`"fixedwindow";r=99;t=50`,
		`"dynamic";r=9;t=50`,
		`"dynamic";r=0;t=20`,
		`"dynamic";r=15;t=40`,
		`"day";r=100;t=36000`,
	}
)

func TestCheckersAcceptDraftExamples(t *testing.T) {
	for _, ex := range draftPolicyExamples {
		if _, err := checkPolicyField(ex); err != nil {
			t.Errorf("RateLimit-Policy: %s: %v", ex, err)
		}
	}
	for _, ex := range draftRateLimitExamples {
		if _, err := checkRateLimitField(ex); err != nil {
			t.Errorf("RateLimit: %s: %v", ex, err)
		}
	}
	// And they refuse what the draft forbids.
	for _, bad := range []string{`default;q=100;w=60`, `"default";w=60`, `"default";q=-1`, `"default";q=100;w=0`, `"default";q=1.5`} {
		if _, err := checkPolicyField(bad); err == nil {
			t.Errorf("RateLimit-Policy: %s accepted", bad)
		}
	}
	for _, bad := range []string{`"default";t=30`, `"default";r=-1;t=3`, `default;r=1`, `"default";r=1;t="5"`} {
		if _, err := checkRateLimitField(bad); err == nil {
			t.Errorf("RateLimit: %s accepted", bad)
		}
	}
}
