package engine

import (
	"fmt"

	"github.com/valyala/fasthttp"
)

// RouteConfig is a pipeline's `route` block, which ends the pipeline instead of a balancer:
// after the pipeline's filters, the request is routed again, as changed by them (a header a
// filter set can select the next pipeline through a match predicate), and the pipeline found
// serves it in full, its own filters included.
type RouteConfig struct {
	// MaxHops bounds how many times one request may be routed again, over the whole chain; past
	// it the request is answered 508 Loop Detected.
	MaxHops int `hcl:"max_hops,optional" json:"max_hops"`
}

// DefaultRouteMaxHops is a route block's max_hops when it sets none.
const DefaultRouteMaxHops = 4

// maxRouteHops is the largest max_hops accepted (Ctx counts hops in a byte).
const maxRouteHops = 16

// SetDefaults fills the route block's defaults.
func (r *RouteConfig) SetDefaults() { r.MaxHops = DefaultRouteMaxHops }

// Validate checks a route block.
func (r *RouteConfig) Validate() error {
	if r.MaxHops < 1 || r.MaxHops > maxRouteHops {
		return FieldErr("max_hops", "must be between 1 and %d", maxRouteHops)
	}
	return nil
}

// routeTerminal is the Terminal of a pipeline that ends in `route`.
type routeTerminal struct {
	g       *Gateway // its Router is set once Build has built every pipeline
	maxHops uint8
}

// Serve routes c again and runs the pipeline found. The response phases of the pipeline that
// routed run afterwards (Pipeline.Serve), so both pipelines' response filters see the response.
// Routing uses the normalized path the request arrived with (c.Path) and the request's current
// listener, host, method, headers, query and cookies.
func (t *routeTerminal) Serve(c *Ctx) {
	self := c.Pipeline
	if c.routeHops >= t.maxHops {
		c.Fail(fasthttp.StatusLoopDetected, fmt.Errorf("route: pipeline %q: the request was routed again %d times (max_hops = %d): routing loop", self.Name, c.routeHops, t.maxHops))
		return
	}
	if c.routeHops == 0 {
		c.entry = self
	}
	c.routeHops++
	p := t.g.Router.Route(c)
	if p == nil {
		c.Response.Reset()
		c.Response.SetStatusCode(fasthttp.StatusNotFound)
		c.Response.Header.SetContentTypeBytes(textPlain)
		c.Response.SetBodyString(notFoundBody)
		return
	}
	// A route in p sets served again, after this: served ends as the last pipeline routed to.
	c.served = p
	p.Serve(c)
	// The routing pipeline's response phases follow, and they read their own pipeline.
	c.Pipeline = self
}

// ServingPipeline is the pipeline that served the request: the last one a `route` terminal
// handed it to, else c.Pipeline. Logs, metrics and spans name it.
func (c *Ctx) ServingPipeline() *Pipeline {
	if c.served != nil {
		return c.served
	}
	return c.Pipeline
}

// EntryPipeline is the pipeline routing chose for the client's request, before any `route`
// terminal handed it on; c.Pipeline when none did.
func (c *Ctx) EntryPipeline() *Pipeline {
	if c.entry != nil {
		return c.entry
	}
	return c.Pipeline
}
