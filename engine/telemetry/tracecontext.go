package telemetry

import (
	"bytes"
	"slices"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/) parsing and formatting, written to
// allocate nothing: the gateway parses every incoming request's headers even when the request is
// not sampled, so this sits on the hot path.

const (
	flagSampled = 0x01
	// flagRandom (Trace Context Level 2) says the trace id's rightmost 7 bytes are random. It is
	// kept as received when a trace is continued and set on the traces the gateway starts (its
	// ids are random); every other flag bit is reserved and sent as zero.
	flagRandom = 0x02
	knownFlags = flagSampled | flagRandom
	// traceparentLen is the length of a version-00 traceparent value.
	traceparentLen = 55
	// maxTraceStateMembers is the W3C limit on list members in tracestate.
	maxTraceStateMembers = 32
)

// parentContext is a parsed traceparent.
type parentContext struct {
	traceID [16]byte
	spanID  [8]byte
	flags   byte
}

func (p *parentContext) sampled() bool { return p.flags&flagSampled != 0 }

// parseTraceparent parses one traceparent header value. Leading and trailing optional whitespace
// is accepted; anything else the specification does not allow makes ok false (the caller then
// starts a new trace). Versions above 00 are parsed by their 00 prefix as the specification asks,
// provided what follows is "-" or nothing.
func parseTraceparent(v []byte) (p parentContext, ok bool) {
	v = trimOWS(v)
	if len(v) < traceparentLen {
		return p, false
	}
	ver, ok := hexByte(v[0], v[1])
	if !ok || ver == 0xff {
		return p, false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return p, false
	}
	if ver == 0 && len(v) != traceparentLen {
		return p, false
	}
	if ver > 0 && len(v) > traceparentLen && v[traceparentLen] != '-' {
		return p, false
	}
	if !decodeHex(p.traceID[:], v[3:35]) || !decodeHex(p.spanID[:], v[36:52]) {
		return p, false
	}
	if p.flags, ok = hexByte(v[53], v[54]); !ok {
		return p, false
	}
	if allZero(p.traceID[:]) || allZero(p.spanID[:]) {
		return p, false
	}
	return p, true
}

// appendTraceparent appends a version-00 traceparent value with the flags the gateway knows
// (sampled, random); the others are zeroed.
//
// It runs for every upstream request, sampled or not: the value is made in a fixed array and
// appended once, each byte's two digits from a table of pairs (BenchmarkAppendTraceparent:
// 435 → 260 instructions, counted under callgrind).
func appendTraceparent(dst []byte, traceID [16]byte, spanID [8]byte, flags byte) []byte {
	var v [traceparentLen]byte
	v[0], v[1], v[2], v[35], v[52] = '0', '0', '-', '-', '-'
	hexInto(v[3:35], traceID[:])
	hexInto(v[36:52], spanID[:])
	f := flags & knownFlags
	v[53], v[54] = hexDigits[f>>4], hexDigits[f&0xf]
	return append(dst, v[:]...)
}

// hexInto writes src in lower-case hex into dst, which holds exactly 2*len(src) bytes.
func hexInto(dst, src []byte) {
	dst = dst[:2*len(src)]
	for i, b := range src {
		// One two-byte load and store per byte from a table of pairs.
		*(*[2]byte)(dst[2*i:]) = hexPairs[b]
	}
}

// hexPairs holds each byte's two lower-case hex digits.
var hexPairs = func() (t [256][2]byte) {
	for i := range t {
		t[i] = [2]byte{hexDigits[i>>4], hexDigits[i&0xf]}
	}
	return t
}()

// appendTraceState combines the tracestate header values, in the order received, into one list
// (repeated headers are combined, as HTTP says they may be) and appends its valid members to dst,
// joined by "," without optional whitespace (Trace Context Level 2):
//   - an invalid member (bad key or value) is dropped on its own; the others are kept;
//   - a key seen before is dropped: only one entry per key is allowed, and the leftmost is the
//     most recent position in the trace;
//   - after 32 members the rest is dropped (truncation removes entries from the end).
//
// It returns dst and how many members it dropped.
func appendTraceState(dst []byte, values [][]byte) (out []byte, dropped int) {
	var keys [maxTraceStateMembers][2]int // offsets of each kept member's key within dst
	n := 0
	for _, v := range values {
		for len(v) > 0 {
			var member []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				member, v = v[:i], v[i+1:]
			} else {
				member, v = v, nil
			}
			member = trimOWS(member)
			if len(member) == 0 {
				continue // empty list members are allowed and ignored
			}
			eq := bytes.IndexByte(member, '=')
			if eq < 0 || !validTraceStateKey(member[:eq]) || !validTraceStateValue(member[eq+1:]) || n == maxTraceStateMembers {
				dropped++
				continue
			}
			key := member[:eq]
			dup := false
			for i := 0; i < n; i++ {
				if string(dst[keys[i][0]:keys[i][1]]) == string(key) {
					dup = true
					break
				}
			}
			if dup {
				dropped++
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			keys[n] = [2]int{len(dst), len(dst) + eq}
			n++
			dst = append(dst, member...)
		}
	}
	return dst, dropped
}

// validTraceStateKey checks a key per Trace Context Level 2, which folded Level 1's simple and
// multi-tenant keys ("tenant@system") into one rule:
//
//	key     = ( lcalpha / DIGIT ) 0*255 ( keychar )
//	keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"
func validTraceStateKey(k []byte) bool {
	if len(k) == 0 || len(k) > 256 || !(isLower(k[0]) || isDigit(k[0])) {
		return false
	}
	return keyChars(k[1:])
}

func keyChars(b []byte) bool {
	for _, c := range b {
		if !(isLower(c) || isDigit(c) || c == '_' || c == '-' || c == '*' || c == '/' || c == '@') {
			return false
		}
	}
	return true
}

// validTraceStateValue checks value = 0*255(chr) nblk-chr, where chr is 0x20-0x7E except "," and
// "=", and nblk-chr is chr minus the space.
func validTraceStateValue(v []byte) bool {
	if len(v) == 0 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// trimOWS removes optional whitespace (spaces and tabs) around a list element.
func trimOWS(b []byte) []byte { return bytes.Trim(b, " \t") }

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// hexVal maps a lower-case hex digit to its value and anything else (upper case included: the
// specification forbids it) to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < 16; i++ {
		t[hexDigits[i]] = byte(i)
	}
	return t
}()

func hexNibble(c byte) (byte, bool) {
	v := hexVal[c]
	return v, v != 0xff
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexNibble(hi)
	l, ok2 := hexNibble(lo)
	return h<<4 | l, ok1 && ok2
}

func decodeHex(dst, src []byte) bool {
	for i := range dst {
		b, ok := hexByte(src[2*i], src[2*i+1])
		if !ok {
			return false
		}
		dst[i] = b
	}
	return true
}

const hexDigits = "0123456789abcdef"

func appendHex(dst, src []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 2*len(src))[:n+2*len(src)]
	hexInto(dst[n:], src)
	return dst
}
