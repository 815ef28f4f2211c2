package wasm

import (
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// Trailers (header kinds 2 and 3), offered when the guest enables the trailers feature.
//
// Response trailers live in fasthttp's trailer section of c.Response.Header: a name is announced
// (the Trailer header) and its values are kept apart from the header fields. fasthttp sends a
// response with trailers chunked, with the trailer section after the body, to an HTTP/1.1
// client (an HTTP/1.0 client cannot receive trailers and gets none). Upstream trailers reach
// c.Response when the balancer has read a held body (up to max_response_bytes), so a guest that
// buffers the response reads them, and the client still gets them.
//
// Request trailers read as none: the server does not pass a client's request trailers on, and the
// balancer sends request bodies with Content-Length, which has no trailer section. Setting one
// traps rather than dropping it silently.

// mustTrailers traps unless the guest enabled the trailers feature.
func (in *instance) mustTrailers(fn string) {
	if in.features&featureTrailers == 0 {
		panic(trapf("%s: trailers need the trailers feature (enable_features(4))", fn))
	}
}

// trailerNames appends the names of the response trailers that have a value.
func trailerNames(names [][]byte, h *fasthttp.ResponseHeader) [][]byte {
	for name := range h.Trailers() {
		if len(h.PeekBytes(name)) > 0 {
			names = append(names, name)
		}
	}
	return names
}

// isTrailer reports whether name (any case) is an announced trailer of h.
func isTrailer(h *fasthttp.ResponseHeader, name []byte) bool {
	for t := range h.Trailers() {
		if ascii.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// trailerValues returns the values of response trailer name, none if it is not a trailer.
func trailerValues(h *fasthttp.ResponseHeader, name []byte) [][]byte {
	if !isTrailer(h, name) {
		return nil
	}
	return h.PeekAll(bytesString(name))
}

// changeTrailer applies a set, add or remove of trailer name on the request (which traps: see
// above) or the response.
func (in *instance) changeTrailer(fn string, kind uint32, op byte, name, value []byte) {
	in.mustTrailers(fn)
	c := in.request(fn)
	if kind == kindRequestTrailers {
		panic(trapf("%s: request trailers are not sent upstream (the gateway sends request bodies with Content-Length)", fn))
	}
	if err := applyTrailerOp(&c.Response.Header, op, name, value); err != nil {
		panic(trapf("%s: %s cannot be a trailer: %v", fn, name, err))
	}
	if in.phase == phaseRequest {
		in.recordOp(op|opTrailer, name, value)
	}
}

// opTrailer marks a recorded response operation (opSet, opAdd, opDel) as one on a trailer.
const opTrailer byte = 0x80

// applyTrailerOp sets, adds or removes response trailer name.
func applyTrailerOp(h *fasthttp.ResponseHeader, op byte, name, value []byte) error {
	if op == opDel {
		removeTrailer(h, name)
		return nil
	}
	// Announcing a name that is already announced changes nothing.
	if err := h.AddTrailerBytes(name); err != nil {
		return err
	}
	if op == opSet {
		h.SetBytesKV(name, value)
	} else {
		h.AddBytesKV(name, value)
	}
	return nil
}

// removeTrailer deletes trailer name's values and takes it off the announced list (fasthttp has
// no call for one name: the list is announced again without it).
func removeTrailer(h *fasthttp.ResponseHeader, name []byte) {
	if !isTrailer(h, name) {
		return
	}
	h.DelBytes(name)
	var rest []byte
	for t := range h.Trailers() {
		if !ascii.EqualFold(t, name) {
			if len(rest) > 0 {
				rest = append(rest, ',')
			}
			rest = append(rest, t...)
		}
	}
	if len(rest) == 0 {
		h.Del(fasthttp.HeaderTrailer)
		return
	}
	_ = h.SetTrailerBytes(rest) // names already accepted once
}
