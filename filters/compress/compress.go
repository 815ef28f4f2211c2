// Package compress implements the "compress" filter kind: responses are encoded with zstd,
// brotli or gzip as the client's Accept-Encoding allows, and, when asked, request bodies sent
// with a Content-Encoding are decoded before later filters and the upstream see them.
//
// The response phase compresses only what is safe and worth it: a body of a listed media type,
// at least min_size long, not already encoded, not marked no-transform, not a 204/304/1xx or a
// range (206, Content-Range) response, not the answer to HEAD, not streamed. Every response it
// could compress gets "Vary: Accept-Encoding", so caches keep the encodings apart. A compressed
// response has its strong ETag made weak (the bytes differ, the meaning does not), loses
// Accept-Ranges (ranges of the encoding are not ranges of the resource) and gets the new
// Content-Length when fasthttp writes it.
//
// Placed before "cache" in a pipeline, compress runs its response phase after the cache's: the
// cache stores the identity body and every client, hit or miss, gets its own encoding.
package compress

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// Register declares the "compress" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "compress", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		limit := int64(8 << 20)
		if env != nil && env.Server != nil && env.Server.MaxBodyBytes > 0 {
			limit = int64(env.Server.MaxBodyBytes)
		}
		f, err := New(cfg, limit)
		if err != nil {
			return nil, err
		}
		if env != nil {
			f.SetPipeline(env.Pipeline)
		}
		if env != nil && env.Logger != nil {
			warnConfig(cfg, env)
		}
		return f, nil
	})
}

// warnConfig logs settings that work but are rarely what was meant.
func warnConfig(cfg *Config, env *engine.BuildEnv) {
	for _, k := range env.Earlier {
		if k == "cache" {
			env.Logger.Warn("compress comes after cache: the cache will store one encoded copy per Accept-Encoding " +
				"value and clients of a hit get the encoding stored; put compress before cache to store the " +
				"identity body once and encode each response")
		}
	}
	for _, a := range cfg.Algorithms {
		if a == Brotli && cfg.level(a) >= 10 {
			// Measured on 16 KiB of JSON: br 9 ≈ 1 ms, br 11 ≈ 70 ms.
			env.Logger.Warn("brotli levels 10 and 11 cost tens of milliseconds of CPU per response; they suit "+
				"precompressed static files, not per-request compression",
				"algorithm", a, "level", cfg.level(a))
		}
	}
}

// Filter is a built compress filter. One value serves every request of its pipeline.
type Filter struct {
	names    []string   // the configured algorithms, in preference order
	encs     []encoder  // their encoders, at the configured levels
	encoding [][]byte   // Content-Encoding values, parallel to names
	counters []counters // metrics, parallel to names
	minSize  int
	types    []typePattern

	decompress   bool
	maxBodyBytes int64
}

// New builds a filter from a validated config. maxBodyBytes bounds decoded request bodies.
func New(cfg *Config, maxBodyBytes int64) (*Filter, error) {
	if len(cfg.Algorithms) > maxAlgorithms {
		return nil, fmt.Errorf("at most %d algorithms", maxAlgorithms)
	}
	f := &Filter{minSize: int(cfg.MinSize), decompress: cfg.DecompressRequests, maxBodyBytes: maxBodyBytes}
	for _, a := range cfg.Algorithms {
		e, err := encoderFor(a, cfg.level(a))
		if err != nil {
			return nil, fmt.Errorf("preparing the %s encoder: %w", a, err)
		}
		f.names = append(f.names, a)
		f.encs = append(f.encs, e)
		f.encoding = append(f.encoding, []byte(a))
	}
	f.SetPipeline("")
	for _, t := range cfg.Types {
		p, err := parseTypePattern(t)
		if err != nil {
			return nil, err
		}
		f.types = append(f.types, p)
	}
	return f, nil
}

var (
	hdrAcceptEncoding  = "Accept-Encoding"
	hdrContentEncoding = "Content-Encoding"
	hdrCacheControl    = "Cache-Control"
	hdrContentRange    = "Content-Range"
	hdrVary            = "Vary"
	hdrETag            = "ETag"
	hdrAcceptRanges    = "Accept-Ranges"
	valAcceptEncoding  = []byte("Accept-Encoding")
)

// SetPipeline labels the filter's metrics with the pipeline name.
func (f *Filter) SetPipeline(name string) {
	f.counters = f.counters[:0]
	for _, a := range f.names {
		f.counters = append(f.counters, newCounters(name, a))
	}
}

// OnRequest decodes an encoded request body when decompress_requests is on.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	if !f.decompress {
		return engine.Continue
	}
	ce := c.Request.Header.ContentEncoding()
	if len(ce) == 0 {
		return engine.Continue
	}
	return f.decodeRequest(c, ce)
}

// decodeRequest undoes each listed coding, last applied first. An unknown coding is 415
// (RFC 7694), a corrupt body 400, and a body that decodes past max_body_bytes 413.
func (f *Filter) decodeRequest(c *engine.Ctx, ce []byte) engine.Verdict {
	var codings [4][]byte
	n := 0
	for v := ce; len(v) > 0; {
		var e []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			e, v = v, nil
		}
		e = trimOWS(e)
		if len(e) == 0 || ascii.EqualFoldLower(e, "identity") {
			continue
		}
		if n == len(codings) {
			return c.Fail(fasthttp.StatusUnsupportedMediaType, errors.New("too many request content codings"))
		}
		codings[n] = e
		n++
	}
	// A streamed body (larger than what came with the head, or chunked) is read in first, up
	// to max_body_bytes: decoding needs all of it.
	if err := c.BufferBody(0); err != nil {
		return c.Fail(engine.BodyErrorStatus(err), fmt.Errorf("reading the compressed request body: %w", err))
	}
	body := c.Request.Body()
	src, dst := getBuffer(), getBuffer()
	defer func() { putBuffer(src); putBuffer(dst) }()
	src.b = append(src.b, body...)
	for i := n - 1; i >= 0; i-- {
		dst.b = dst.b[:0]
		if err := decode(dst, codings[i], src.b, f.maxBodyBytes); err != nil {
			switch {
			case errors.Is(err, errTooLarge):
				return c.Fail(fasthttp.StatusRequestEntityTooLarge, err)
			case errors.Is(err, errUnsupported):
				return c.Fail(fasthttp.StatusUnsupportedMediaType, fmt.Errorf("request Content-Encoding %q: %w", codings[i], err))
			}
			return c.Fail(fasthttp.StatusBadRequest, err)
		}
		src, dst = dst, src
	}
	c.Request.SetBody(src.b)
	c.Request.Header.Del(hdrContentEncoding)
	return engine.Continue
}

// OnResponse encodes the response when the client accepts one of the configured codings and
// the response qualifies.
func (f *Filter) OnResponse(c *engine.Ctx) {
	resp := c.Response
	h := &resp.Header
	if !f.eligible(c) {
		return
	}
	// Whether or not this client gets an encoding, another client would: caches must key on
	// Accept-Encoding.
	addVary(h)
	if c.Request.Header.IsHead() {
		return
	}
	body := resp.Body()
	if len(body) < f.minSize || len(body) == 0 {
		return
	}
	i := negotiate(c.Request.Header.Peek(hdrAcceptEncoding), f.names)
	if i < 0 {
		return
	}
	out := getBuffer()
	defer putBuffer(out)
	if err := f.encs[i].encode(out, body); err != nil {
		// The identity body is still intact: send it and note why.
		if c.Failure == nil {
			c.Failure = fmt.Errorf("compressing the response with %s: %w", f.names[i], err)
		}
		return
	}
	if len(out.b) >= len(body) {
		return // incompressible: the encoding would only cost the client
	}
	// SetBody copies into the response's own buffer: the body may have been set raw from an
	// immutable slice (a cache entry), which must not be swapped out or written to.
	m := &f.counters[i]
	m.responses.Inc()
	m.in.Add(float64(len(body)))
	m.out.Add(float64(len(out.b)))
	resp.SetBody(out.b)
	h.SetContentEncodingBytes(f.encoding[i])
	c.Annotate("sluice.compress.encoding", f.names[i])
	h.Del(hdrAcceptRanges)
	weakenETag(h)
}

// eligible reports whether the response could be compressed for some client: its status,
// headers and type allow it. The size and the client's Accept-Encoding are checked after.
func (f *Filter) eligible(c *engine.Ctx) bool {
	resp := c.Response
	h := &resp.Header
	switch st := resp.StatusCode(); {
	case st < 200, st == fasthttp.StatusNoContent, st == fasthttp.StatusNotModified,
		st == fasthttp.StatusPartialContent:
		return false
	}
	if resp.IsBodyStream() {
		return false // a streamed (over max_response_bytes) body is never held whole
	}
	if ce := h.ContentEncoding(); len(ce) > 0 && !ascii.EqualFoldLower(trimOWS(ce), "identity") {
		return false
	}
	if len(h.Peek(hdrContentRange)) > 0 {
		return false
	}
	if !f.typeMatches(h.ContentType()) {
		return false
	}
	for _, v := range h.PeekAll(hdrCacheControl) {
		if hasToken(v, "no-transform") {
			return false
		}
	}
	return true
}

// typeMatches reports whether the Content-Type's media type is listed. The comparison is
// case-insensitive and ignores parameters; server-sent events are never compressed as a whole.
func (f *Filter) typeMatches(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = trimOWS(ct)
	if len(ct) == 0 || len(ct) > 128 {
		return false
	}
	var lower [128]byte
	for i, b := range ct {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		lower[i] = b
	}
	mt := lower[:len(ct)]
	if string(mt) == "text/event-stream" {
		return false
	}
	for i := range f.types {
		if f.types[i].match(mt) {
			return true
		}
	}
	return false
}

// addVary adds Accept-Encoding to Vary unless it, or "*", is already there.
func addVary(h *fasthttp.ResponseHeader) {
	for _, v := range h.PeekAll(hdrVary) {
		if hasToken(v, "accept-encoding") || hasToken(v, "*") {
			return
		}
	}
	h.AddBytesV(hdrVary, valAcceptEncoding)
}

// weakenETag turns a strong ETag `"x"` into `W/"x"`: the encoded bytes differ from the identity
// ones, so a strong validator would wrongly promise byte equality (RFC 9110 §8.8.3).
func weakenETag(h *fasthttp.ResponseHeader) {
	et := h.Peek(hdrETag)
	if len(et) == 0 || et[0] != '"' {
		return // absent, or already weak
	}
	var buf [128]byte
	v := append(append(buf[:0], 'W', '/'), et...)
	h.SetBytesV(hdrETag, v)
}
