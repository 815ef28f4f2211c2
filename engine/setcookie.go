package engine

import (
	"github.com/sluice-gateway/sluice/engine/fhlayout"
	"github.com/valyala/fasthttp"
)

// presetCookie is a Set-Cookie field fixed when a configuration is built (the split's sticky
// cookie), kept as fasthttp stores a Set-Cookie it was given, so that adding it to a response is
// a copy.
//
// fasthttp keeps a response's Set-Cookie fields in a list of (name, field value) pairs. Each
// exported way of adding one works the value out again on every call: SetCanonical, Set and Add
// copy it and scan it for line breaks, then find the cookie's name in it (about 600 instructions
// for the split's 56 bytes, RATIONALE.md "Why do the edge filters' rows still read more than
// their budgets"), and SetCookie serialises a Cookie in its own spelling ("max-age=…; path=/"),
// which is not the one clients of Sluice get, and replaces a cookie of the same name rather
// than adding one. So the pair SetCanonical would store is computed once, by SetCanonical itself
// on a scratch header, and appendTo appends a copy of it to the unexported list (reached through
// engine/fhlayout) directly, as SetCanonical's last step does: the response ends up exactly as
// after SetCanonical, for the writer (HTTP/1.1 and HTTP/2) and for every filter that reads or
// removes Set-Cookie later.
type presetCookie struct {
	name, value []byte
}

// newPresetCookie is the Set-Cookie field value as fasthttp would store it.
func newPresetCookie(value []byte) presetCookie {
	var h fasthttp.ResponseHeader
	h.SetCanonical(hdrSetCookie, value)
	kv := &(*fhlayout.ResponseCookies(&h))[0]
	return presetCookie{name: kv.Key, value: kv.Value}
}

// appendTo adds the Set-Cookie field to h, as h.SetCanonical("Set-Cookie", value) would, and
// allocates nothing once h's list has had room for it (fasthttp's Reset keeps the room).
//
// Set-Cookie is never in a response's trailer section (fasthttp refuses to announce it), the
// one case where SetCanonical would store it elsewhere.
//
// Kept out of line: inlined into chooser.Serve, its temporaries made Serve's frame, which sits on
// the stack under the whole upstream exchange, 240 bytes, so that every request touched four more
// cold stack lines (RATIONALE.md "Where does the split row's time go beyond the chooser's own
// instructions?").
//
//go:noinline
func (p *presetCookie) appendTo(h *fasthttp.ResponseHeader) {
	fhlayout.Append(fhlayout.ResponseCookies(h), p.name, p.value)
}
