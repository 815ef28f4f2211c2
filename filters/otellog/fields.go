package otellog

import (
	"bytes"
	"sync"

	"github.com/sluice-gateway/sluice/engine"
)

// The record's fields about how the request ended: who made the response, why (Envoy-style
// response flags), the request id and the incoming trace context.

// source is the response-source field: "upstream" when the client's response came from an
// upstream, "gateway" when the gateway made it (a filter's answer, a refusal, a failure).
func source(c *engine.Ctx) string {
	if c.FromUpstream {
		return "upstream"
	}
	return "gateway"
}

// hostOnly is the Host header without its port: server.address per the conventions.
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		if i := bytes.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// traceHeaders are the client's traceparent and tracestate, copied in the request phase: the
// balancer replaces them with the gateway's own before the response phase.
type traceHeaders struct{ parent, state []byte }

var (
	traceKey  = engine.NewKey[*traceHeaders]("otel_log.trace_headers")
	tracePool = sync.Pool{New: func() any { return &traceHeaders{} }}
)

// The W3C trace headers, normalised once for the lookup.
var traceparentName, tracestateName = engine.NewHeaderName("traceparent"), engine.NewHeaderName("tracestate")

// keepTraceHeaders copies the request's trace headers for the record (trace_headers = true).
func keepTraceHeaders(c *engine.Ctx) {
	tp, ts := traceparentName.Peek(&c.Request.Header), tracestateName.Peek(&c.Request.Header)
	if tp == nil && ts == nil {
		return
	}
	th := tracePool.Get().(*traceHeaders)
	th.parent = append(th.parent[:0], tp...)
	th.state = append(th.state[:0], ts...)
	traceKey.Set(c, th)
}

// takeTraceHeaders returns the kept trace headers (nil if none); give them back with
// releaseTraceHeaders once written.
func takeTraceHeaders(c *engine.Ctx) *traceHeaders {
	th, _ := traceKey.Get(c)
	return th
}

func releaseTraceHeaders(c *engine.Ctx, th *traceHeaders) {
	if th == nil {
		return
	}
	traceKey.Set(c, nil)
	tracePool.Put(th)
}

// appendOutcomeJSON appends request_id, source, flags and bytes_in (and the trace headers).
func (f *Filter) appendOutcomeJSON(b []byte, c *engine.Ctx, th *traceHeaders) []byte {
	if f.reqID != "" {
		if id := f.reqIDh.Peek(&c.Request.Header); len(id) > 0 {
			b = append(b, `,"request_id":`...)
			b = appendJSONString(b, id)
		}
	}
	b = append(b, `,"source":"`...)
	b = append(b, source(c)...)
	b = append(b, `","flags":"`...)
	b = c.Flags.AppendText(b)
	b = append(b, `","bytes_in":`...)
	b = appendInt(b, c.BytesIn())
	if th != nil {
		if len(th.parent) > 0 {
			b = append(b, `,"traceparent":`...)
			b = appendJSONString(b, th.parent)
		}
		if len(th.state) > 0 {
			b = append(b, `,"tracestate":`...)
			b = appendJSONString(b, th.state)
		}
	}
	return b
}

// appendOutcomeText is appendOutcomeJSON in logfmt.
func (f *Filter) appendOutcomeText(b []byte, c *engine.Ctx, th *traceHeaders) []byte {
	if f.reqID != "" {
		if id := f.reqIDh.Peek(&c.Request.Header); len(id) > 0 {
			b = append(b, " request_id="...)
			b = appendTextValue(b, id)
		}
	}
	b = append(b, " source="...)
	b = append(b, source(c)...)
	b = append(b, " flags="...)
	b = c.Flags.AppendText(b)
	b = append(b, " bytes_in="...)
	b = appendInt(b, c.BytesIn())
	if th != nil {
		if len(th.parent) > 0 {
			b = append(b, " traceparent="...)
			b = appendTextValue(b, th.parent)
		}
		if len(th.state) > 0 {
			b = append(b, " tracestate="...)
			b = appendTextValue(b, th.state)
		}
	}
	return b
}
