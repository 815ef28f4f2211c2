package engine

import (
	"bytes"
	"strings"

	"github.com/sluice-gateway/sluice/engine/fhlayout"
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
// ordinary fields (reached through engine/fhlayout) directly, as AddBytesKV's last step does,
// when what AddBytesKV would do is known: the name is not one fasthttp keeps apart (decided
// once, by AddBytesKV itself on a scratch header), normalising is on (it is in the server, as
// for HeaderName), the name is not an announced trailer, and the value holds no CR or LF. Otherwise it calls AddBytesKV. Either
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
	list := *fhlayout.ResponseFields(&h)
	n := ResponseHeaderName{raw: []byte(name), canon: fasthttp.AppendNormalizedHeaderKey(nil, name)}
	n.plain = len(list) == 2 && bytes.Equal(list[0].Key, n.canon) && bytes.Equal(list[1].Key, n.canon) &&
		string(list[0].Value) == "1" && string(list[1].Value) == "2"
	return n
}

// Add adds the field name: value to h, as h.AddBytesKV(name, value) would, and allocates nothing
// once h's list has had room for it (fasthttp's Reset keeps the room).
func (n *ResponseHeaderName) Add(h *fasthttp.ResponseHeader, value []byte) {
	n.add(h, value, bytes.IndexByte(value, '\r') < 0 && bytes.IndexByte(value, '\n') < 0)
}

// add is Add for a value known to hold (clean) or not to hold line breaks.
func (n *ResponseHeaderName) add(h *fasthttp.ResponseHeader, value []byte, clean bool) {
	if !clean || !n.plain || *fhlayout.ResponseNoNormalizing(h) || len(*fhlayout.ResponseTrailerNames(h)) > 0 {
		// The uncommon cases: fasthttp decides (a trailer section, line breaks replaced).
		h.AddBytesKV(n.raw, value)
		return
	}
	fhlayout.Append(fhlayout.ResponseFields(h), n.canon, value)
}

// AddValue adds the field n with an empty value to h, as Add would, and returns the value's
// buffer for the caller to append the value to in place (fasthttp's own buffer, kept by Reset:
// appending allocates nothing once it has had room). The value must hold no CR or LF: it is not
// scanned. AddValue returns nil, and adds nothing, when fasthttp must add the field itself (a
// trailer announced, normalising off, a name fasthttp keeps apart): the caller then calls Add.
func (n *ResponseHeaderName) AddValue(h *fasthttp.ResponseHeader) *[]byte {
	if !n.plain || *fhlayout.ResponseNoNormalizing(h) || len(*fhlayout.ResponseTrailerNames(h)) > 0 {
		return nil
	}
	return &fhlayout.AppendKey(fhlayout.ResponseFields(h), n.canon).Value
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
