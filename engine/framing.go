package engine

import "bytes"

// conflictingFraming reports whether raw request headers carry both Content-Length and
// Transfer-Encoding. fasthttp resolves that case itself (chunked wins) and by the time the handler
// runs no longer shows both, so the raw header block is the only place to see it. A front proxy and
// a back end that disagree on framing is how requests get smuggled: such a request is refused, and
// its connection closed so no leftover bytes are read as another request.
//
// raw is what fasthttp's RawHeaders returns: the header lines without the request line, so the
// first line is a header too (skipping it let either header through when it came first).
func conflictingFraming(raw []byte) bool {
	var cl, te bool
	for len(raw) > 0 {
		switch raw[0] | 0x20 {
		case 'c':
			cl = cl || hasFoldPrefix(raw, "content-length")
		case 't':
			te = te || hasFoldPrefix(raw, "transfer-encoding")
		}
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			break
		}
		raw = raw[i+1:]
	}
	return cl && te
}

// hasFoldPrefix reports whether line starts with name followed by optional spaces and ':'.
func hasFoldPrefix(line []byte, name string) bool {
	if len(line) <= len(name) {
		return false
	}
	for j := 0; j < len(name); j++ {
		// Fold case for letters only: '\r'|0x20 is '-'.
		if c := name[j]; line[j] != c && (c < 'a' || c > 'z' || line[j]|0x20 != c) {
			return false
		}
	}
	for _, b := range line[len(name):] {
		switch b {
		case ':':
			return true
		case ' ', '\t':
			continue
		}
		return false
	}
	return false
}
