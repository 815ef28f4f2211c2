package rewrite

import (
	"regexp"
	"unicode"
	"unicode/utf8"
)

// template is path_replace parsed once, when the filter is built: regexp.Expand would parse
// it again on every request (finding each '$', reading the group's name, comparing it with
// every group's name), which cost more than the match itself. Its output is the same as
// Expand's for the same template (TestTemplateMatchesExpand).
type template struct {
	pieces []piece
	// oneGroup: the template is head, a reference to group 1 alone, then tail (either text may
	// be empty), as the common "/api/$1" is; expand then appends the three without walking the
	// pieces.
	oneGroup   bool
	head, tail []byte
}

// piece is literal text, or a reference to the capture groups groups (a name can belong to
// more than one: the first that took part in the match is used, as Expand does).
type piece struct {
	lit    []byte
	groups []int // nil: lit
}

// parseTemplate reads tmpl with regexp.Expand's rules: "$$" is a '$'; "$name" and "${name}"
// refer to a group by number or name (a name is the longest run of letters, digits and '_';
// a number with a leading zero is a name); an unknown name expands to nothing; a '$' not
// followed by a valid reference is itself.
func parseTemplate(re *regexp.Regexp, tmpl string) template {
	var t []piece
	lit := func(s string) {
		if s == "" {
			return
		}
		if n := len(t); n > 0 && t[n-1].groups == nil {
			t[n-1].lit = append(t[n-1].lit, s...)
			return
		}
		t = append(t, piece{lit: []byte(s)})
	}
	for tmpl != "" {
		i := 0
		for i < len(tmpl) && tmpl[i] != '$' {
			i++
		}
		lit(tmpl[:i])
		if i == len(tmpl) {
			break
		}
		tmpl = tmpl[i+1:]
		if tmpl != "" && tmpl[0] == '$' {
			lit("$")
			tmpl = tmpl[1:]
			continue
		}
		name, rest, ok := refName(tmpl)
		if !ok {
			lit("$")
			continue
		}
		tmpl = rest
		groups := []int{} // not nil: a reference, even one to no group
		if n, isNum := groupNumber(name); isNum {
			if n <= re.NumSubexp() {
				groups = append(groups, n)
			}
		} else {
			for j, sn := range re.SubexpNames() {
				if sn == name {
					groups = append(groups, j)
				}
			}
		}
		t = append(t, piece{groups: groups})
	}
	pt := template{pieces: t}
	i := 0
	if i < len(t) && t[i].groups == nil {
		pt.head = t[i].lit
		i++
	}
	if i < len(t) && len(t[i].groups) == 1 && t[i].groups[0] == 1 {
		i++
		if i < len(t) && t[i].groups == nil {
			pt.tail = t[i].lit
			i++
		}
		pt.oneGroup = i == len(t)
	}
	return pt
}

// refName reads the group reference at the start of s (after its '$'): its name and what follows.
func refName(s string) (name, rest string, ok bool) {
	brace := s != "" && s[0] == '{'
	if brace {
		s = s[1:]
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
			break
		}
		i += size
	}
	if i == 0 {
		return "", "", false
	}
	name, rest = s[:i], s[i:]
	if brace {
		if rest == "" || rest[0] != '}' {
			return "", "", false
		}
		rest = rest[1:]
	}
	return name, rest, true
}

// groupNumber is name as a group number; isNum is false for a name that is not one (letters, a
// leading zero, a number too large to be a group).
func groupNumber(name string) (n int, isNum bool) {
	if len(name) > 1 && name[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' || n >= 1e8 {
			return 0, false
		}
		n = n*10 + int(name[i]-'0')
	}
	return n, true
}

// expand appends the template's output for the match m (capture positions in src, as
// FindSubmatchIndex gives them).
func (t *template) expand(dst []byte, src []byte, m []int) []byte {
	if t.oneGroup && len(m) >= 4 && m[2] >= 0 {
		dst = append(append(dst, t.head...), src[m[2]:m[3]]...)
		if len(t.tail) > 0 { // mostly empty ("/api/$1"): no call to copy nothing
			dst = append(dst, t.tail...)
		}
		return dst
	}
	for i := range t.pieces {
		p := &t.pieces[i]
		if p.groups == nil {
			dst = append(dst, p.lit...)
			continue
		}
		for _, g := range p.groups {
			if 2*g+1 < len(m) && m[2*g] >= 0 {
				dst = append(dst, src[m[2*g]:m[2*g+1]]...)
				break
			}
		}
	}
	return dst
}
