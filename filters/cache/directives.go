package cache

import (
	"time"

	"github.com/sluice-gateway/sluice/engine/ascii"
)

// directives is what the cache reads from Cache-Control (RFC 9111 §5.2), request or response.
type directives struct {
	noStore, noCache, private, public bool
	mustRevalidate, onlyIfCached      bool
	maxAge, sMaxAge, swr, sie         int64 // seconds; -1 when absent (sie: stale-if-error)
	noCacheFields, privateFields      bool  // the qualified forms no-cache="…", private="…"
	invalid                           bool  // a duration that does not parse
}

// parseDirectives reads every Cache-Control field value in vals. It does not allocate.
func parseDirectives(vals [][]byte) directives {
	d := directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}
	for _, v := range vals {
		for len(v) > 0 {
			var e []byte
			e, v = nextElement(v)
			name, val := splitDirective(e)
			switch {
			case len(name) == 0:
			case ascii.EqualFoldLower(name, "no-store"):
				d.noStore = true
			case ascii.EqualFoldLower(name, "no-cache"):
				d.noCache = true
				d.noCacheFields = len(val) > 0
			case ascii.EqualFoldLower(name, "private"):
				d.private = true
				d.privateFields = len(val) > 0
			case ascii.EqualFoldLower(name, "public"):
				d.public = true
			case ascii.EqualFoldLower(name, "must-revalidate"), ascii.EqualFoldLower(name, "proxy-revalidate"):
				d.mustRevalidate = true
			case ascii.EqualFoldLower(name, "only-if-cached"):
				d.onlyIfCached = true
			case ascii.EqualFoldLower(name, "max-age"):
				d.maxAge = d.seconds(val, d.maxAge)
			case ascii.EqualFoldLower(name, "s-maxage"):
				d.sMaxAge = d.seconds(val, d.sMaxAge)
			case ascii.EqualFoldLower(name, "stale-while-revalidate"):
				d.swr = d.seconds(val, d.swr)
			case ascii.EqualFoldLower(name, "stale-if-error"):
				d.sie = d.seconds(val, d.sie)
			}
		}
	}
	return d
}

// seconds parses a delta-seconds value. Several values for one directive keep the smallest
// (the conservative reading); a malformed one marks the set invalid.
func (d *directives) seconds(v []byte, cur int64) int64 {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1] // tolerated quoted form, max-age="60"
	}
	if len(v) == 0 {
		d.invalid = true
		return cur
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			d.invalid = true
			return cur
		}
		if n < 1<<40 { // past ~35,000 years the value saturates (RFC 9111 §1.2.2)
			n = n*10 + int64(c-'0')
		}
	}
	if cur >= 0 && cur < n {
		return cur
	}
	return n
}

func secs(n int64) time.Duration { return time.Duration(n) * time.Second }

// nextElement returns the first comma-separated element of v (trimmed) and the rest. A comma
// inside a quoted string does not split.
func nextElement(v []byte) (elem, rest []byte) {
	inQuote := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			inQuote = !inQuote
		case '\\':
			if inQuote {
				i++
			}
		case ',':
			if !inQuote {
				return trim(v[:i]), v[i+1:]
			}
		}
	}
	return trim(v), nil
}

// splitDirective splits `name=value` into its parts; value is nil when there is none.
func splitDirective(e []byte) (name, val []byte) {
	for i, c := range e {
		if c == '=' {
			return trim(e[:i]), trim(e[i+1:])
		}
	}
	return e, nil
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasListToken reports whether a comma-separated header value names tok (lower-case).
func hasListToken(vals [][]byte, tok string) bool {
	for _, v := range vals {
		for len(v) > 0 {
			var e []byte
			e, v = nextElement(v)
			if ascii.EqualFoldLower(e, tok) {
				return true
			}
		}
	}
	return false
}
