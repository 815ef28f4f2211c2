package engine

import "github.com/valyala/fasthttp"

// HeaderName is a request header's name normalised once, when a configuration is built, for
// looking the header up on every request without normalising the name again.
//
// RequestHeader.Peek and PeekBytes copy the name they are given and normalise its case
// ("x-canary" → "X-Canary") on every call before they look; for a name of a dozen bytes that is
// most of the lookup (RATIONALE.md, "Why do filters look request headers up through
// engine.HeaderName"). Peek here hands fasthttp's PeekCanonical the name as fasthttp itself
// normalises it (AppendNormalizedHeaderKey runs the same code Peek does), and PeekCanonical is
// the lookup Peek ends in: special headers (Host, Content-Type, Cookie, Content-Length,
// Connection, User-Agent, Trailer), duplicates (the first value) and the trailer section answer
// exactly as through Peek.
//
// This holds while fasthttp normalises the request's header names, as the server is configured
// (DisableHeaderNamesNormalizing = false in server.go; a RequestHeader's Reset turns
// normalising back on): with normalising disabled, Peek would look the name up as given.
type HeaderName struct {
	canon []byte
}

// NewHeaderName normalises name for Peek.
func NewHeaderName(name string) HeaderName {
	return HeaderName{canon: fasthttp.AppendNormalizedHeaderKey(nil, name)}
}

// Peek returns what h.Peek(name) returns, without normalising name again. The value is h's:
// valid until the request is released, not to be kept.
func (n HeaderName) Peek(h *fasthttp.RequestHeader) []byte {
	return h.PeekCanonical(n.canon)
}

// IsZero reports whether n was never set (the zero HeaderName names no header).
func (n HeaderName) IsZero() bool { return n.canon == nil }

// String is the normalised name.
func (n HeaderName) String() string { return string(n.canon) }
