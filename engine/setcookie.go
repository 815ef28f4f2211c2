package engine

import (
	"fmt"
	"reflect"
	"unsafe"

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
// on a scratch header, and appendTo appends a copy of it to the unexported list directly, as
// SetCanonical's last step does: the response ends up exactly as after SetCanonical, for the
// writer (HTTP/1.1 and HTTP/2) and for every filter that reads or removes Set-Cookie later.
type presetCookie struct {
	name, value []byte
}

// newPresetCookie is the Set-Cookie field value as fasthttp would store it.
func newPresetCookie(value []byte) presetCookie {
	var h fasthttp.ResponseHeader
	h.SetCanonical(hdrSetCookie, value)
	kv := &(*responseCookies(&h))[0]
	return presetCookie{name: kv.key, value: kv.value}
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
	list := responseCookies(h)
	s := *list
	n := len(s)
	if n < cap(s) {
		s = s[:n+1] // reuses the entry's buffers, as fasthttp's allocArg does
	} else {
		s = append(s, cookieKV{value: []byte{}})
	}
	kv := &s[n]
	kv.key = append(kv.key[:0], p.name...)
	kv.value = append(kv.value[:0], p.value...)
	kv.noValue = false // a reused entry may have held a valueless argument
	*list = s
}

// cookieKV is fasthttp's argsKV, an entry of ResponseHeader's cookie list; responseCookiesOffset
// checks that the two agree field for field.
type cookieKV struct {
	key     []byte
	value   []byte
	noValue bool
}

// responseCookies is h's list of Set-Cookie fields.
func responseCookies(h *fasthttp.ResponseHeader) *[]cookieKV {
	return (*[]cookieKV)(unsafe.Add(unsafe.Pointer(h), responseCookiesOffset))
}

// responseCookiesOffset is where ResponseHeader keeps its Set-Cookie fields, found by name and
// type when the package loads: a fasthttp release that moved, renamed or reshaped the list makes
// the package panic at start-up (every test fails), it cannot corrupt a response.
var responseCookiesOffset = cookiesField()

func cookiesField() uintptr {
	fail := func(why string) uintptr {
		panic("engine: fasthttp.ResponseHeader's cookie list is not as presetCookie expects (" + why + "): setcookie.go needs updating")
	}
	hdr, ok := reflect.TypeFor[fasthttp.ResponseHeader]().FieldByName("header")
	if !ok || !hdr.Anonymous || hdr.Type.Kind() != reflect.Struct {
		return fail("no embedded header struct")
	}
	f, ok := hdr.Type.FieldByName("cookies")
	if !ok || len(f.Index) != 1 || f.Type.Kind() != reflect.Slice {
		return fail("no cookies slice")
	}
	theirs, ours := f.Type.Elem(), reflect.TypeFor[cookieKV]()
	if theirs.Kind() != reflect.Struct || theirs.Size() != ours.Size() || theirs.NumField() != ours.NumField() {
		return fail("the entry is not a " + ours.String())
	}
	for i := range ours.NumField() {
		a, b := theirs.Field(i), ours.Field(i)
		if a.Name != b.Name || a.Type != b.Type || a.Offset != b.Offset {
			return fail(fmt.Sprintf("entry field %d is %s %s at %d", i, a.Name, a.Type, a.Offset))
		}
	}
	return hdr.Offset + f.Offset
}
