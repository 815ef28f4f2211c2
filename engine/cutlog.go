package engine

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/valyala/fasthttp"
)

// A response cut mid-body ends in a way its client takes for a truncated one: over HTTP/2 the
// stream is reset with INTERNAL_ERROR, over HTTP/1.x the connection closes before the body's end.
// The gateway cuts a response when the upstream's body fails while it streams, or when a write
// to the client passes its deadline (write_timeout; over HTTP/1.x also min_write_rate's cut and
// stream_timeout). Each such cut is logged with the request it cut: the identifying fields of
// the 5xx lines (failurelog.go), the client's address and the HTTP/2 stream, and never a secret —
// no query string, no header value but the request id. A client that went away cut the response
// itself, and is not logged. The lines are rate-limited per pipeline as the 5xx lines are, in a
// window of their own (Server.cuts): an upstream that dies cuts every response streaming from it
// at once.

// The messages of the two cuts the gateway logs.
const (
	cutUpstreamMsg = "response cut mid-body: the upstream's body failed"
	cutStalledMsg  = "response cut mid-body: a write to the client passed its deadline"
)

// cutMessage is the log message for cut, "" for a cut that is not logged (the client went away).
func cutMessage(cut *ResponseCutError) string {
	switch {
	case cut.Upstream:
		return cutUpstreamMsg
	case errors.Is(cut.Err, os.ErrDeadlineExceeded):
		return cutStalledMsg
	}
	return ""
}

// logCut logs cut, a cut of the response to fc's request, unless it is not logged (cutMessage)
// or its pipeline has used up this second's lines. c is the request's Ctx, nil when the request
// was answered without one (an HTTP/2 stream refused before its pipeline ran): the line then
// names no pipeline or upstream. stream is the HTTP/2 stream's id, 0 when unknown (HTTP/1.x,
// net/http's server). It runs only on a cut: nothing here is on a request's way when none is.
func (s *Server) logCut(c *Ctx, fc *fasthttp.RequestCtx, stream uint32, cut *ResponseCutError) {
	msg := cutMessage(cut)
	if msg == "" {
		return
	}
	pipeline, entry, upstream := "", "", ""
	if c != nil {
		upstream = c.UpstreamName()
		if p := c.ServingPipeline(); p != nil {
			pipeline = p.Name
		}
		if p := c.EntryPipeline(); p != nil && p.Name != pipeline {
			entry = p.Name
		}
	}
	ok, suppressed := s.cuts.allow(pipeline)
	if !ok {
		return
	}
	req := &fc.Request
	proto, client := ProtoHTTP2, fc.RemoteIP().String()
	var path []byte
	if c != nil {
		proto, path = c.Proto, c.Path
		if c.ClientAddr.IsValid() {
			client = c.ClientAddr.String() // as trusted_proxies decide it
		}
	} else {
		raw, _ := RawPath(req)
		path = NormalizePath(nil, raw)
	}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("pipeline", pipeline),
		slog.String("method", string(req.Header.Method())),
		// The normalized path, without the query, which may carry credentials.
		slog.String("path", string(path)),
		slog.String("proto", proto),
		slog.String("client", client),
	)
	if stream != 0 {
		attrs = append(attrs, slog.Uint64("stream", uint64(stream)))
	}
	if entry != "" {
		attrs = append(attrs, slog.String("entry_pipeline", entry))
	}
	if upstream != "" {
		attrs = append(attrs, slog.String("upstream", upstream))
	}
	if c != nil && c.Target != "" {
		attrs = append(attrs, slog.String("target", c.Target), slog.Int("attempts", c.Attempts))
	}
	attrs = append(attrs, slog.String("cause", cut.Err.Error()))
	if s.reqID != "" {
		attrs = append(attrs, slog.String("request_id", string(s.reqIDh.Peek(&req.Header))))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	ctx := context.Background()
	if c != nil && c.Context != nil {
		ctx = c.Context
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, msg, attrs...)
}
