package wasm

import "github.com/valyala/fasthttp"

// nameCache remembers the canonical form (fasthttp's: "x-wasm" → "X-Wasm") of the last header
// names a guest passed to the host functions that set or read a header, so that a guest naming
// the same few headers on every request pays for the check and the case fold once per
// instance rather than once per call (fasthttp's normalizing costs about 25 instructions a
// byte). Only names that are valid tokens are kept, so a hit is a valid name. Each entry
// keeps its own buffers, reused round-robin: nothing allocates once they have grown.
type nameCache struct {
	ents [nameCacheSize]nameEnt
	n    int // entries in use
	next int // the entry a miss replaces once all are in use
	// scratchReq and scratchResp are where setheader.go asks fasthttp where it keeps a name.
	scratchReq  fasthttp.RequestHeader
	scratchResp fasthttp.ResponseHeader
}

// nameCacheSize bounds the scan of a miss; filters name a handful of headers.
const nameCacheSize = 8

type nameEnt struct {
	raw   []byte // the name as the guest passed it
	canon []byte // its canonical form
	// plain says, per header (setheader.go), whether fasthttp's SetCanonical keeps the name in
	// its list of ordinary fields: plainKnown marks the decisions taken.
	plain, plainKnown uint8
}

// canonical returns name's canonical form, valid until the next call; ok is false when name is
// not a valid header name (an HTTP token), which is not cached.
func (nc *nameCache) canonical(name []byte) (canon []byte, ok bool) {
	e := nc.lookup(name)
	if e == nil {
		return nil, false
	}
	return e.canon, true
}

// lookup returns name's entry, valid until the next call; nil when name is not a valid header
// name (an HTTP token), which is not cached.
func (nc *nameCache) lookup(name []byte) *nameEnt {
	for i := range nc.ents[:nc.n] {
		if e := &nc.ents[i]; string(e.raw) == string(name) {
			return e
		}
	}
	if !validToken(name) {
		return nil
	}
	i := nc.n
	if i < nameCacheSize {
		nc.n++
	} else {
		i = nc.next
		nc.next = (nc.next + 1) % nameCacheSize
	}
	e := &nc.ents[i]
	e.raw = append(e.raw[:0], name...)
	e.canon = fasthttp.AppendNormalizedHeaderKeyBytes(e.canon[:0], name)
	e.plain, e.plainKnown = 0, 0
	return e
}
