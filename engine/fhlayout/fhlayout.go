// Package fhlayout reaches the unexported lists fasthttp keeps a header's fields in, for the few
// hot-path steps fasthttp has no exported way to do cheaply: the response's Set-Cookie list
// (engine's presetCookie), its list of ordinary fields, announced trailer names and whether it
// normalises names (engine.ResponseHeaderName), and the request's header and trailer lists
// (filters/internal/delheader). Each exported way of doing those steps works the name or value
// out again on every call; the measured costs are in RATIONALE.md ("Why do the edge filters' rows
// still read more than their budgets", "What grew in the quickstart's native filters since
// 2026-11-27, and what was cut?").
//
// Every field is found by name through reflection when the package loads, and checked for its
// exact type (an entry of a list field for field, name, type and offset, against KV): a fasthttp
// release that moved, renamed or reshaped one makes this package panic at start-up, before
// anything is served, so every test fails; it cannot corrupt a header.
package fhlayout

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// KV is fasthttp's argsKV, an entry of a header's field lists; find checks that the two agree
// field for field (fasthttp's names are these with the first letter in lower case).
type KV struct {
	Key     []byte
	Value   []byte
	NoValue bool
}

// Append adds the entry key: value at the end of list, reusing the buffers of an entry past its
// length as fasthttp's own appends do, so that nothing allocates once the list has had room for it
// (fasthttp's Reset keeps the room).
func Append(list *[]KV, key, value []byte) {
	s := *list
	n := len(s)
	if n < cap(s) {
		s = s[:n+1]
	} else {
		s = append(s, KV{Value: []byte{}})
	}
	kv := &s[n]
	kv.Key = append(kv.Key[:0], key...)
	kv.Value = append(kv.Value[:0], value...)
	kv.NoValue = false // a reused entry may have held a valueless argument
	*list = s
}

// AppendKey adds an entry with the key key and an empty value at the end of list and returns it,
// for a caller that writes the value in place (one copy of it instead of two); buffers are reused
// as by Append, whose steps these are (Append is kept apart so that it still inlines).
func AppendKey(list *[]KV, key []byte) *KV {
	s := *list
	n := len(s)
	if n < cap(s) {
		s = s[:n+1]
	} else {
		s = append(s, KV{Value: []byte{}})
	}
	kv := &s[n]
	kv.Key = append(kv.Key[:0], key...)
	kv.Value = kv.Value[:0]
	kv.NoValue = false
	*list = s
	return kv
}

// ResponseCookies is h's list of Set-Cookie fields (each as a cookie name and the field's value).
func ResponseCookies(h *fasthttp.ResponseHeader) *[]KV {
	return (*[]KV)(unsafe.Add(unsafe.Pointer(h), at.respCookies))
}

// ResponseFields is h's list of ordinary fields (those fasthttp does not keep apart).
func ResponseFields(h *fasthttp.ResponseHeader) *[]KV {
	return (*[]KV)(unsafe.Add(unsafe.Pointer(h), at.respFields))
}

// ResponseTrailerNames is h's list of announced trailer names.
func ResponseTrailerNames(h *fasthttp.ResponseHeader) *[][]byte {
	return (*[][]byte)(unsafe.Add(unsafe.Pointer(h), at.respTrailer))
}

// ResponseNoNormalizing is h's flag that its names are stored as given, not normalised.
func ResponseNoNormalizing(h *fasthttp.ResponseHeader) *bool {
	return (*bool)(unsafe.Add(unsafe.Pointer(h), at.respNoNormalizing))
}

// RequestFields is h's list of ordinary fields of the header section.
func RequestFields(h *fasthttp.RequestHeader) *[]KV {
	return (*[]KV)(unsafe.Add(unsafe.Pointer(h), at.reqFields))
}

// RequestTrailers is h's list of the trailer section's fields.
func RequestTrailers(h *fasthttp.RequestHeader) *[]KV {
	return (*[]KV)(unsafe.Add(unsafe.Pointer(h), at.reqTrailers))
}

// RequestTrailerNames is h's list of announced trailer names.
func RequestTrailerNames(h *fasthttp.RequestHeader) *[][]byte {
	return (*[][]byte)(unsafe.Add(unsafe.Pointer(h), at.reqTrailer))
}

// offsets are where the lists lie, from the start of a RequestHeader or ResponseHeader.
type offsets struct {
	respCookies, respFields, respTrailer, respNoNormalizing uintptr
	reqFields, reqTrailers, reqTrailer                      uintptr
}

var at = findAll()

func findAll() offsets {
	resp, req := reflect.TypeFor[fasthttp.ResponseHeader](), reflect.TypeFor[fasthttp.RequestHeader]()
	kvs := reflect.TypeFor[[]KV]()
	return offsets{
		respCookies:       find(resp, "cookies", kvs),
		respFields:        find(resp, "h", kvs),
		respTrailer:       find(resp, "trailer", reflect.TypeFor[[][]byte]()),
		respNoNormalizing: find(resp, "disableNormalizing", reflect.TypeFor[bool]()),
		reqFields:         find(req, "h", kvs),
		reqTrailers:       find(req, "trailerH", kvs),
		reqTrailer:        find(req, "trailer", reflect.TypeFor[[][]byte]()),
	}
}

// find is the offset in header (RequestHeader or ResponseHeader) of the field name of its
// embedded header struct, checked to be laid out as ours; it panics otherwise.
func find(header reflect.Type, name string, ours reflect.Type) uintptr {
	fail := func(why string) {
		panic(fmt.Sprintf("fhlayout: fasthttp.%s's %s is not as Sluice expects (%s): engine/fhlayout needs updating",
			header.Name(), name, why))
	}
	hdr, ok := header.FieldByName("header")
	if !ok || !hdr.Anonymous || hdr.Type.Kind() != reflect.Struct || len(hdr.Index) != 1 {
		fail("no embedded header struct")
	}
	f, ok := hdr.Type.FieldByName(name)
	if !ok || len(f.Index) != 1 {
		fail("no such field")
	}
	if why := sameLayout(f.Type, ours); why != "" {
		fail(why)
	}
	return hdr.Offset + f.Offset
}

// sameLayout says how theirs differs from ours, or "" if it does not: the same type, or a slice
// of a struct whose fields match ours one for one in name (ours with the first letter in lower
// case), type and offset.
func sameLayout(theirs, ours reflect.Type) string {
	if theirs == ours {
		return ""
	}
	if theirs.Kind() != reflect.Slice || ours.Kind() != reflect.Slice || ours.Elem().Kind() != reflect.Struct {
		return fmt.Sprintf("it is a %s, not a %s", theirs, ours)
	}
	theirs, ours = theirs.Elem(), ours.Elem()
	if theirs.Kind() != reflect.Struct || theirs.Size() != ours.Size() || theirs.NumField() != ours.NumField() {
		return "an entry is not a " + ours.String()
	}
	for i := range ours.NumField() {
		a, b := theirs.Field(i), ours.Field(i)
		if a.Name != lowerFirst(b.Name) || a.Type != b.Type || a.Offset != b.Offset {
			return fmt.Sprintf("entry field %d is %s %s at %d", i, a.Name, a.Type, a.Offset)
		}
	}
	return ""
}

// lowerFirst is name with its first (ASCII) letter in lower case.
func lowerFirst(name string) string { return string(name[0]|0x20) + name[1:] }
