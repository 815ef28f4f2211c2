package compress

import (
	"bytes"

	"github.com/sluice-gateway/sluice/engine/ascii"
)

// Accept-Encoding negotiation (RFC 9110 §12.5.3), without allocating.
//
// The header is a comma-separated list of codings, each with an optional weight:
//
//	Accept-Encoding: zstd;q=1.0, br;q=0.9, gzip;q=0.5, *;q=0
//
// Rules applied here:
//   - q=0 forbids a coding; a coding without q has q=1.
//   - "*" gives its weight to every coding the header does not name.
//   - "identity" takes part only when named: a client that ranks identity above every coding we
//     offer gets the body uncompressed. (An unacceptable identity is ignored: the body is then
//     sent uncompressed anyway rather than answered with 406, as common servers do.)
//   - "x-gzip" is gzip (RFC 9110 §8.4.1.3).
//   - A coding named twice keeps its lowest weight, so an ambiguous header never turns a
//     refusal into an acceptance.
//   - Malformed elements (a coding that is not a token, a weight that is not a qvalue such as
//     "q=2", "q=0.1234", "q=abc", "q =1") are ignored; the rest of the header still counts.
//   - Among acceptable codings, the highest weight wins; ties go to the configured order.
//   - No header, or an empty one, means identity.

// maxAlgorithms bounds the configured algorithms (there are three).
const maxAlgorithms = 4

// negotiate returns the index in algs of the coding to send, or -1 for identity.
func negotiate(header []byte, algs []string) int {
	var q [maxAlgorithms]int // -1: not named
	for i := range q {
		q[i] = -1
	}
	starQ, identityQ := -1, -1
	for len(header) > 0 {
		var elem []byte
		if i := bytes.IndexByte(header, ','); i >= 0 {
			elem, header = header[:i], header[i+1:]
		} else {
			elem, header = header, nil
		}
		name, weight, ok := parseElement(elem)
		if !ok {
			continue
		}
		switch {
		case len(name) == 1 && name[0] == '*':
			starQ = lower(starQ, weight)
		case ascii.EqualFoldLower(name, "identity"):
			identityQ = lower(identityQ, weight)
		default:
			for i, a := range algs {
				if ascii.EqualFoldLower(name, a) || (a == Gzip && ascii.EqualFoldLower(name, "x-gzip")) {
					q[i] = lower(q[i], weight)
				}
			}
		}
	}
	best, bestQ := -1, 0
	for i := range algs {
		w := q[i]
		if w < 0 {
			w = starQ // -1 when there is no "*": not acceptable
		}
		if w > bestQ {
			best, bestQ = i, w
		}
	}
	if best >= 0 && identityQ > bestQ {
		return -1
	}
	return best
}

// lower keeps the lowest weight seen for a coding (-1 meaning none yet).
func lower(cur, w int) int {
	if cur < 0 || w < cur {
		return w
	}
	return cur
}

// parseElement splits one list element into its coding and weight (0–1000). ok is false for an
// empty or malformed element.
func parseElement(e []byte) (name []byte, weight int, ok bool) {
	e = trimOWS(e)
	if len(e) == 0 {
		return nil, 0, false
	}
	params := []byte(nil)
	if i := bytes.IndexByte(e, ';'); i >= 0 {
		name, params = trimOWS(e[:i]), e[i+1:]
	} else {
		name = e
	}
	if !isToken(name) {
		return nil, 0, false
	}
	weight = 1000
	for len(params) > 0 {
		var p []byte
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, nil
		}
		p = trimOWS(p)
		if len(p) == 0 {
			continue // "gzip;;q=1": empty parameters are harmless
		}
		if p[0] != 'q' && p[0] != 'Q' {
			continue // an accept-ext parameter: ignored
		}
		if len(p) < 2 || p[1] != '=' {
			return nil, 0, false // "q" without "=", "q =0.5", "quality=1": malformed weight
		}
		w, good := parseQ(p[2:])
		if !good {
			return nil, 0, false
		}
		weight = w
	}
	return name, weight, true
}

// parseQ parses a qvalue: "0" ["." 0–3 digits] or "1" ["." 0–3 zeros], scaled to 0–1000.
func parseQ(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	n := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return n, true
	}
	if v[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, d := range v[2:] {
		if d < '0' || d > '9' {
			return 0, false
		}
		n += int(d-'0') * scale
		scale /= 10
	}
	if n > 1000 {
		return 0, false
	}
	return n, true
}

// trimOWS removes optional whitespace (spaces and tabs) around a list element.
func trimOWS(b []byte) []byte { return bytes.Trim(b, " \t") }

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}', '"':
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v names tok (lower-case), ignoring case,
// whitespace and any "=value" or parameters after the token.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var e []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			e, v = v, nil
		}
		e = trimOWS(e)
		if i := indexAny(e, "=;"); i >= 0 {
			e = trimOWS(e[:i])
		}
		if ascii.EqualFoldLower(e, tok) {
			return true
		}
	}
	return false
}

func indexAny(b []byte, chars string) int {
	for i, c := range b {
		for j := 0; j < len(chars); j++ {
			if c == chars[j] {
				return i
			}
		}
	}
	return -1
}
