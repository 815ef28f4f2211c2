package telemetry

import (
	"github.com/sluice-gateway/sluice/engine"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// rerouted points the request's metrics and server span at the pipeline that served it when a
// `route` terminal handed the request on: the span was started, and named, when only the entry
// pipeline was known. The span keeps the entry pipeline as sluice.entry_pipeline.
func (o *observer) rerouted(c *engine.Ctx, st *reqState) {
	served := c.ServingPipeline()
	if served == nil || served == c.Pipeline {
		return
	}
	st.pi = o.pipe(served)
	if !st.sampled {
		return
	}
	method, known := knownMethod(c.Request.Header.Method())
	if !known {
		method = "HTTP"
	}
	st.server.SetName(method + " " + served.Name)
	st.server.SetAttributes(semconv.HTTPRoute(served.Name))
	if entry := c.EntryPipeline(); entry != nil {
		st.server.SetAttributes(attrEntryPipeline.String(entry.Name))
	}
}
