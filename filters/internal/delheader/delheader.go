// Package delheader removes a request header by a name normalised once, when a configuration is
// built: what fasthttp's RequestHeader.DelBytes does for that name, without its work on the name
// itself on every call.
//
// DelBytes copies the name it is given into a scratch buffer, checks each byte, case-folds it
// (unless normalising is off), dispatches on it among fasthttp's special headers (Host,
// Content-Type, User-Agent, Cookie, Content-Length, Connection, Trailer), and only then removes
// the fields of that name from the header list and the trailer list: about 280 instructions
// for `Authorization` with normalising off, most of them on the name (RATIONALE.md "Why do the
// edge filters' rows still read more than their budgets"). fasthttp has no removal by a
// normalised name. For a name that is none of the special headers, the removal is exactly the
// last step, two passes over unexported lists: Name.Del does those passes itself, on the lists
// engine/fhlayout reaches (found by name and type through reflection when that package loads: a
// fasthttp release that moved, renamed or reshaped them makes it panic at start-up, so every
// test fails; it cannot leave a header in place). A special name is removed by DelBytes.
package delheader

import (
	"github.com/sluice-gateway/sluice/engine/fhlayout"
	"github.com/valyala/fasthttp"
)

// Name is a request header name to remove.
type Name struct {
	canon   string // as fasthttp stores parsed names
	special bool   // one of fasthttp's special headers: removed by DelBytes
}

// New normalises name as fasthttp does the names of the requests it parses.
func New(name string) Name {
	canon := string(fasthttp.AppendNormalizedHeaderKey(nil, name))
	switch canon {
	case fasthttp.HeaderHost, fasthttp.HeaderContentType, fasthttp.HeaderUserAgent, fasthttp.HeaderCookie,
		fasthttp.HeaderContentLength, fasthttp.HeaderConnection, fasthttp.HeaderTrailer:
		return Name{canon: canon, special: true}
	}
	for _, b := range []byte(canon) {
		if !tokenByte(b) {
			// fasthttp leaves such a name as given and stores it so: DelBytes handles it.
			return Name{canon: canon, special: true}
		}
	}
	return Name{canon: canon}
}

// tokenByte is a byte of an RFC 9110 token, the bytes fasthttp normalises names of.
func tokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// Del removes every field named n from h, its header and trailer sections, as h.DelBytes(n)
// would. The server normalises the names it parses (engine's premise, guarded by its
// TestServerNormalisesHeaderNames), so the stored names are compared as they are.
func (n Name) Del(h *fasthttp.RequestHeader) {
	if n.special {
		h.DelBytes([]byte(n.canon))
		return
	}
	fields, trailers := fhlayout.RequestFields(h), fhlayout.RequestTrailers(h)
	*fields = delAll(*fields, n.canon)
	*trailers = delAll(*trailers, n.canon)
}

// delAll removes the entries named key, as fasthttp's delAllArgs does: each is swapped with the
// last one kept, so the list keeps the removed entries' buffers past its length for reuse.
func delAll(s []fhlayout.KV, key string) []fhlayout.KV {
	n := len(s)
	for i := 0; i < n; i++ {
		if string(s[i].Key) == key {
			n--
			if i != n { // (swapping an entry with itself would still copy it twice)
				s[i], s[n] = s[n], s[i]
			}
			i--
		}
	}
	return s[:n]
}
