package telemetry

import (
	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// routeTemplate is http.route for the requests a pipeline serves: its match's path prefix as a
// template ("/api/" → "/api/*", "/" → "/*"). The pipeline's name goes in sluice.pipeline.
func routeTemplate(p *engine.Pipeline) string {
	prefix := p.Match.PathPrefix
	if prefix == "" {
		prefix = "/"
	}
	return prefix + "*"
}

// rawQuery is the request's raw query (without '?'), read from its request-target (see rawPath).
func rawQuery(req *fasthttp.Request) []byte {
	_, q := engine.RawPath(req)
	return q
}

// serverSpanID is the id of the request's server span (sampled) or of its local span.
func (st *reqState) serverSpanID() trace.SpanID {
	if st.sampled && st.server != nil {
		return st.server.spanID
	}
	return st.spanID
}

// annotationSpan is where a filter's annotation goes: the open stage span, or the server span
// when filter spans are off; nil when the request is not sampled.
func annotationSpan(c *engine.Ctx) *spanRecord {
	st := activeState(c)
	if st == nil || !st.sampled {
		return nil
	}
	if st.stage != nil {
		return st.stage
	}
	return st.server
}

// AnnotateString records a filter's decision on its span (engine.SpanAnnotator).
func (o *observer) AnnotateString(c *engine.Ctx, key, value string) {
	if sp := annotationSpan(c); sp != nil {
		sp.set(attribute.String(key, value))
	}
}

// AnnotateInt records a filter's decision on its span (engine.SpanAnnotator).
func (o *observer) AnnotateInt(c *engine.Ctx, key string, value int64) {
	if sp := annotationSpan(c); sp != nil {
		sp.set(attribute.Int64(key, value))
	}
}

// Recording reports whether c's request is sampled (engine.SpanAnnotator).
func (o *observer) Recording(c *engine.Ctx) bool { return annotationSpan(c) != nil }
