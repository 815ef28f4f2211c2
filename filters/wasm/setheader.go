package wasm

import (
	"bytes"

	"github.com/sluice-gateway/sluice/engine/fhlayout"
	"github.com/valyala/fasthttp"
)

// Setting a header (http-wasm's set_header_value, proxy-wasm's replace) through fasthttp's
// SetCanonical copies the value into a scratch buffer and scans it for line breaks, dispatches
// on the name for the fields fasthttp keeps apart (Content-Type, Connection, Cookie, …), checks
// it against the announced trailers, and then replaces the first field of that name in its list
// of ordinary fields or appends one: about 240 instructions a call, most of it work whose
// answer is known. setHeader does that last step itself, on the list reached through
// engine/fhlayout, when what SetCanonical would do is known:
//
//   - the name is one fasthttp keeps in its list of ordinary fields whatever the value: decided
//     once per cached name and header kind (nameEnt.plain), by SetCanonical itself on a scratch
//     header, with values that would send Connection and the like elsewhere;
//   - no trailer names are announced (fasthttp would put an announced name in the trailers);
//   - the value holds no line break (the host functions have refused control characters).
//
// Otherwise it calls SetCanonical. Either way the header is left exactly as SetCanonical leaves
// it (TestSetHeaderMatchesSetCanonical).

const (
	plainRequest  uint8 = 1
	plainResponse uint8 = 2
)

// plainProbes are the values a name must store as given, and replace, to count as plain:
// "close" sends Connection elsewhere, the others any name fasthttp keeps apart.
var plainProbes = [...][]byte{[]byte("1"), []byte("close"), []byte("2")}

// setRequestHeader sets the request header e: value (e from lookup, value without control
// characters), as h.SetCanonical(e.canon, value) would.
func (nc *nameCache) setRequestHeader(h *fasthttp.RequestHeader, e *nameEnt, value []byte) {
	if e.plainKnown&plainRequest == 0 {
		s := &nc.scratchReq
		s.Reset()
		plain := true
		for _, v := range plainProbes {
			s.SetCanonical(e.canon, v)
			plain = plain && onlyField(*fhlayout.RequestFields(s), e.canon, v)
		}
		e.plainKnown |= plainRequest
		if plain {
			e.plain |= plainRequest
		}
	}
	if e.plain&plainRequest == 0 || len(*fhlayout.RequestTrailerNames(h)) > 0 {
		h.SetCanonical(e.canon, value)
		return
	}
	setField(fhlayout.RequestFields(h), e.canon, value)
}

// setResponseHeader is setRequestHeader for a response header.
func (nc *nameCache) setResponseHeader(h *fasthttp.ResponseHeader, e *nameEnt, value []byte) {
	if e.plainKnown&plainResponse == 0 {
		s := &nc.scratchResp
		s.Reset()
		plain := true
		for _, v := range plainProbes {
			s.SetCanonical(e.canon, v)
			plain = plain && onlyField(*fhlayout.ResponseFields(s), e.canon, v)
		}
		e.plainKnown |= plainResponse
		if plain {
			e.plain |= plainResponse
		}
	}
	if e.plain&plainResponse == 0 || len(*fhlayout.ResponseTrailerNames(h)) > 0 {
		h.SetCanonical(e.canon, value)
		return
	}
	setField(fhlayout.ResponseFields(h), e.canon, value)
}

// onlyField says list holds exactly the field key: value.
func onlyField(list []fhlayout.KV, key, value []byte) bool {
	return len(list) == 1 && bytes.Equal(list[0].Key, key) && bytes.Equal(list[0].Value, value) && !list[0].NoValue
}

// setField replaces the value of the first field key in list, or appends key: value, as
// fasthttp's setArg does (and, as it, allocates nothing once the list has had room).
func setField(list *[]fhlayout.KV, key, value []byte) {
	s := *list
	for i := range s {
		if kv := &s[i]; string(kv.Key) == string(key) {
			kv.Value = append(kv.Value[:0], value...)
			kv.NoValue = false
			return
		}
	}
	fhlayout.Append(list, key, value)
}
