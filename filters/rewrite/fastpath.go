package rewrite

import (
	"bytes"
	"regexp/syntax"
)

// literalPrefix is a path_regex of the common shape `^/LITERAL(.*)` (or `(.+)`, with or without
// a trailing `$`), matched without Go's regexp: regexp returns capture positions only in a new
// slice (FindSubmatchIndex; it has no variant that fills a caller's), one allocation per
// request, while this fills a fixed array. Any other expression goes to regexp.
type literalPrefix struct {
	prefix []byte
	plus   bool // (.+): the group captures at least one byte
	nl     bool // (?s): '.' also matches '\n'
}

// parseLiteralPrefix recognises the shape; ok is false for any other expression.
func parseLiteralPrefix(expr string) (lp *literalPrefix, ok bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat {
		return nil, false
	}
	sub := re.Sub
	if n := len(sub); n > 0 && sub[n-1].Op == syntax.OpEndText {
		sub = sub[:n-1] // (.*)$ is (.*) when '.' covers what is left
	}
	if len(sub) != 3 || sub[0].Op != syntax.OpBeginText || sub[1].Op != syntax.OpLiteral ||
		sub[1].Flags&syntax.FoldCase != 0 || sub[2].Op != syntax.OpCapture || sub[2].Cap != 1 {
		return nil, false
	}
	lp = &literalPrefix{}
	for _, r := range sub[1].Rune {
		if r >= 0x80 { // keep to ASCII: no question of how a rune is encoded
			return nil, false
		}
		lp.prefix = append(lp.prefix, byte(r))
	}
	rep := sub[2].Sub[0]
	if rep.Flags&syntax.NonGreedy != 0 { // (.*?) captures as little as it can
		return nil, false
	}
	switch rep.Op {
	case syntax.OpStar:
	case syntax.OpPlus:
		lp.plus = true
	default:
		return nil, false
	}
	switch rep.Sub[0].Op {
	case syntax.OpAnyChar:
		lp.nl = true
	case syntax.OpAnyCharNotNL:
	default:
		return nil, false
	}
	return lp, true
}

// match fills m as regexp's FindSubmatchIndex would for path. sure is false when regexp must
// decide (a '\n' that '.' does not match), and then m and matched mean nothing.
func (lp *literalPrefix) match(path []byte, m *[4]int) (matched, sure bool) {
	if !bytes.HasPrefix(path, lp.prefix) {
		return false, true
	}
	rest := path[len(lp.prefix):]
	if !lp.nl && bytes.IndexByte(rest, '\n') >= 0 {
		return false, false
	}
	if lp.plus && len(rest) == 0 {
		return false, true
	}
	*m = [4]int{0, len(path), len(lp.prefix), len(path)}
	return true, true
}
