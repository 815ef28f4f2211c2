package engine

import (
	"unsafe"

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
	// name and value lie end to end in one buffer (one cache line for the split's 62 bytes).
	name, value []byte
}

// newPresetCookie is the Set-Cookie field value as fasthttp would store it.
func newPresetCookie(value []byte) presetCookie {
	var h fasthttp.ResponseHeader
	h.SetCanonical(hdrSetCookie, value)
	kv := &(*fhlayout.ResponseCookies(&h))[0]
	name, v := bufPair(kv.Key, kv.Value)
	return presetCookie{name: name, value: v}
}

// bufPair copies name and value end to end into one new buffer: the name's slice is capped at
// its length, so that an append to it (fasthttp reuses an entry's buffers for the next field)
// moves it rather than overwrite the value.
func bufPair(name, value []byte) (n, v []byte) {
	b := make([]byte, 0, len(name)+len(value))
	b = append(append(b, name...), value...)
	return b[:len(name):len(name)], b[len(name):]
}

// appendTo adds the Set-Cookie field to h, as h.SetCanonical("Set-Cookie", value) would, and
// allocates nothing once h's list has had room for it (fasthttp's Reset keeps the room).
//
// Set-Cookie is never in a response's trailer section (fasthttp refuses to announce it), the
// one case where SetCanonical would store it elsewhere.
//
// The usual case, a response whose list had the entry before (the connection's previous
// response: fasthttp's Reset keeps the room and the entry's buffers), is two copies into the
// entry's own buffers; the rest is out of line (appendNew). The entry's buffers are never shared
// with another entry or with p: fasthttp appends in place into them for the next response.
//
// Kept out of line: inlined into chooser.Serve, its temporaries made Serve's frame, which sits on
// the stack under the whole upstream exchange, 240 bytes, so that every request touched four more
// cold stack lines (RATIONALE.md "Where does the split row's time go beyond the chooser's own
// instructions?").
//
//go:noinline
func (p *presetCookie) appendTo(h *fasthttp.ResponseHeader) {
	list := fhlayout.ResponseCookies(h)
	n := len(*list)
	if n < cap(*list) {
		kv := &(*list)[:n+1][n]
		nk, nv := len(p.name), len(p.value)
		if cap(kv.Key) == nk && cap(kv.Value) >= nv && unsafe.Pointer(unsafe.SliceData(kv.Value)) == unsafe.Add(unsafe.Pointer(unsafe.SliceData(kv.Key)), nk) {
			// The entry's name and value lie end to end, as appendNew left them: one copy of
			// both. The bytes written are the name's nk within the name's capacity and the
			// value's nv within the value's, whatever allocated them. Reslicing in place writes
			// only the lengths (no pointer, no write barrier).
			kv.Key = kv.Key[:nk]
			kv.Value = kv.Value[:nv]
			copy(unsafe.Slice(unsafe.SliceData(kv.Key), nk+nv), unsafe.Slice(unsafe.SliceData(p.name), nk+nv))
			kv.NoValue = false // a reused entry may have held a valueless argument
			*list = (*list)[:n+1]
			return
		}
		if cap(kv.Key) >= nk && cap(kv.Value) >= nv {
			kv.Key = kv.Key[:nk]
			kv.Value = kv.Value[:nv]
			copy(kv.Key, p.name)
			copy(kv.Value, p.value)
			kv.NoValue = false
			*list = (*list)[:n+1]
			return
		}
	}
	p.appendNew(list)
}

// appendNew is appendTo for a list without room for the entry, or an entry whose buffers are too
// short: the entry gets one new buffer holding the name and the value end to end (bufPair), where
// fasthttp's own append would give it two, so that the next responses' copies write one line.
func (p *presetCookie) appendNew(list *[]fhlayout.KV) {
	n := len(*list)
	if n == cap(*list) {
		*list = append(*list, fhlayout.KV{})
	}
	*list = (*list)[:n+1]
	kv := &(*list)[n]
	kv.Key, kv.Value = bufPair(p.name, p.value)
	kv.NoValue = false
}
