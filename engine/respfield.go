package engine

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// ResponseHeaderName is a response header field's name normalised once, when a configuration is
// built, for adding the field to responses without normalising the name again (rate_limit's
// RateLimit-Policy and RateLimit on every response).
//
// ResponseHeader.AddBytesKV copies the name into a scratch buffer, checks and case-folds it
// ("RateLimit" → "Ratelimit"), copies the value and scans it for line breaks, dispatches on the
// name for the fields fasthttp keeps apart (Content-Type, Set-Cookie, …) and checks the name
// against the announced trailers, on every call: about 850 instructions for rate_limit's two
// fields, most of its response phase (RATIONALE.md, "What grew in the quickstart's native
// filters since 2026-11-27, and what was cut?"). Add appends the field to fasthttp's list of
// ordinary fields directly, as AddBytesKV's last step does, when what AddBytesKV would do is
// known: the name is not one fasthttp keeps apart (decided once, by AddBytesKV itself on a
// scratch header), normalising is on (it is in the server, as for HeaderName), the name is not
// an announced trailer, and the value holds no CR or LF. Otherwise it calls AddBytesKV. Either
// way the header ends up exactly as after AddBytesKV, for the HTTP/1.1 and HTTP/2 writers and
// for whatever reads the response later (TestResponseHeaderNameAddMatchesAddBytesKV).
type ResponseHeaderName struct {
	raw   []byte // as configured, for AddBytesKV
	canon []byte // as fasthttp stores it
	plain bool   // AddBytesKV stores it in the list of ordinary fields
}

// NewResponseHeaderName normalises name for Add.
func NewResponseHeaderName(name string) ResponseHeaderName {
	// Added twice: a name fasthttp keeps apart lands elsewhere, or replaces (Connection).
	var h fasthttp.ResponseHeader
	h.AddBytesKV([]byte(name), []byte("1"))
	h.AddBytesKV([]byte(name), []byte("2"))
	list := *responseFields(&h)
	n := ResponseHeaderName{raw: []byte(name), canon: fasthttp.AppendNormalizedHeaderKey(nil, name)}
	n.plain = len(list) == 2 && bytes.Equal(list[0].key, n.canon) && bytes.Equal(list[1].key, n.canon) &&
		string(list[0].value) == "1" && string(list[1].value) == "2"
	return n
}

// Add adds the field name: value to h, as h.AddBytesKV(name, value) would, and allocates nothing
// once h's list has had room for it (fasthttp's Reset keeps the room).
func (n *ResponseHeaderName) Add(h *fasthttp.ResponseHeader, value []byte) {
	n.add(h, value, bytes.IndexByte(value, '\r') < 0 && bytes.IndexByte(value, '\n') < 0)
}

// add is Add for a value known to hold (clean) or not to hold line breaks.
func (n *ResponseHeaderName) add(h *fasthttp.ResponseHeader, value []byte, clean bool) {
	if !clean || !n.plain || *responseNoNormalizing(h) || len(*responseTrailers(h)) > 0 {
		// The uncommon cases: fasthttp decides (a trailer section, line breaks replaced).
		h.AddBytesKV(n.raw, value)
		return
	}
	list := responseFields(h)
	s := *list
	i := len(s)
	if i < cap(s) {
		s = s[:i+1] // reuses the entry's buffers, as fasthttp's allocArg does
	} else {
		s = append(s, fieldKV{value: []byte{}})
	}
	kv := &s[i]
	kv.key = append(kv.key[:0], n.canon...)
	kv.value = append(kv.value[:0], value...)
	kv.noValue = false // a reused entry may have held a valueless argument
	*list = s
}

// String is the name as fasthttp stores it.
func (n *ResponseHeaderName) String() string { return string(n.canon) }

// ResponseField is a whole response header field fixed when a configuration is built (rate_limit's
// RateLimit-Policy): ResponseHeaderName's Add with the value's scan for line breaks done once.
type ResponseField struct {
	name  ResponseHeaderName
	value []byte
	clean bool
}

// NewResponseField prepares the field name: value.
func NewResponseField(name, value string) ResponseField {
	return ResponseField{name: NewResponseHeaderName(name), value: []byte(value),
		clean: !strings.ContainsAny(value, "\r\n")}
}

// AddTo adds the field to h, as h.AddBytesKV(name, value) would.
func (f *ResponseField) AddTo(h *fasthttp.ResponseHeader) { f.name.add(h, f.value, f.clean) }

// fieldKV is fasthttp's argsKV, an entry of a header's field list; headerFieldOffsets checks
// that the two agree field for field.
type fieldKV struct {
	key     []byte
	value   []byte
	noValue bool
}

func responseFields(h *fasthttp.ResponseHeader) *[]fieldKV {
	return (*[]fieldKV)(unsafe.Add(unsafe.Pointer(h), respFieldsAt.list))
}

func responseTrailers(h *fasthttp.ResponseHeader) *[][]byte {
	return (*[][]byte)(unsafe.Add(unsafe.Pointer(h), respFieldsAt.trailer))
}

func responseNoNormalizing(h *fasthttp.ResponseHeader) *bool {
	return (*bool)(unsafe.Add(unsafe.Pointer(h), respFieldsAt.noNormalizing))
}

// respFieldsAt is where ResponseHeader keeps its ordinary fields (h), its announced trailer names
// (trailer) and whether it normalises names (disableNormalizing), found by name and type when
// the package loads: a fasthttp release that moved, renamed or reshaped them makes the package
// panic at start-up (every test fails); it cannot corrupt a response.
var respFieldsAt = headerFieldOffsets()

type respOffsets struct{ list, trailer, noNormalizing uintptr }

func headerFieldOffsets() respOffsets {
	fail := func(why string) {
		panic("engine: fasthttp.ResponseHeader is not as ResponseHeaderName expects (" + why + "): respfield.go needs updating")
	}
	hdr, ok := reflect.TypeFor[fasthttp.ResponseHeader]().FieldByName("header")
	if !ok || !hdr.Anonymous || hdr.Type.Kind() != reflect.Struct {
		fail("no embedded header struct")
	}
	field := func(name string, want reflect.Type) uintptr {
		f, ok := hdr.Type.FieldByName(name)
		if !ok || len(f.Index) != 1 {
			fail("no field " + name)
		}
		if want != nil && f.Type != want {
			fail(fmt.Sprintf("%s is a %s", name, f.Type))
		}
		return hdr.Offset + f.Offset
	}
	list := field("h", nil)
	f, _ := hdr.Type.FieldByName("h")
	if f.Type.Kind() != reflect.Slice {
		fail("h is not a slice")
	}
	theirs, ours := f.Type.Elem(), reflect.TypeFor[fieldKV]()
	if theirs.Kind() != reflect.Struct || theirs.Size() != ours.Size() || theirs.NumField() != ours.NumField() {
		fail("an entry of h is not a " + ours.String())
	}
	for i := range ours.NumField() {
		a, b := theirs.Field(i), ours.Field(i)
		if a.Name != b.Name || a.Type != b.Type || a.Offset != b.Offset {
			fail(fmt.Sprintf("entry field %d is %s %s at %d", i, a.Name, a.Type, a.Offset))
		}
	}
	return respOffsets{
		list:          list,
		trailer:       field("trailer", reflect.TypeFor[[][]byte]()),
		noNormalizing: field("disableNormalizing", reflect.TypeFor[bool]()),
	}
}
