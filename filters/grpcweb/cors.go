package grpcweb

import (
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

var (
	hdrOrigin           = []byte("Origin")
	hdrRequestMethod    = []byte("Access-Control-Request-Method")
	hdrAllowOrigin      = []byte("Access-Control-Allow-Origin")
	hdrAllowMethods     = []byte("Access-Control-Allow-Methods")
	hdrAllowHeaders     = []byte("Access-Control-Allow-Headers")
	hdrAllowCredentials = []byte("Access-Control-Allow-Credentials")
	hdrExposeHeaders    = []byte("Access-Control-Expose-Headers")
	hdrMaxAge           = []byte("Access-Control-Max-Age")
	hdrVary             = []byte("Vary")
	valPost             = []byte("POST")
	valTrue             = []byte("true")
	valStar             = []byte("*")
)

// corsOn reports whether the filter answers cross-origin requests at all.
func (f *Filter) corsOn() bool { return f.allowAll || len(f.origins) > 0 }

// allowed reports whether origin may call the pipeline.
func (f *Filter) allowed(origin []byte) bool {
	if f.allowAll {
		return true
	}
	for _, o := range f.origins {
		if ascii.EqualFoldLower(origin, o) {
			return true
		}
	}
	return false
}

// preflight answers a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method):
// 204 with the allowed method and headers for an allowed origin, 403 for another. Any other
// OPTIONS request, and every one when allow_origins is empty, goes on to the next stage.
func (f *Filter) preflight(c *engine.Ctx) engine.Verdict {
	h := &c.Request.Header
	origin := h.PeekBytes(hdrOrigin)
	if !f.corsOn() || len(origin) == 0 || len(h.PeekBytes(hdrRequestMethod)) == 0 {
		return engine.Continue
	}
	if !f.allowed(origin) {
		engine.WriteError(c.Response, fasthttp.StatusForbidden)
		c.Response.Header.AddBytesKV(hdrVary, hdrOrigin)
		return engine.Respond
	}
	resp := c.Response
	resp.SetStatusCode(fasthttp.StatusNoContent)
	rh := &resp.Header
	f.allowOrigin(rh, origin)
	rh.SetBytesKV(hdrAllowMethods, valPost)
	if len(f.allowHeaders) > 0 {
		rh.SetBytesKV(hdrAllowHeaders, f.allowHeaders)
	}
	if f.maxAge != nil {
		rh.SetBytesKV(hdrMaxAge, f.maxAge)
	}
	return engine.Respond
}

// corsHeaders lets the page of an allowed origin read a gRPC-Web response (local replies
// included): its body, and the headers in expose_headers.
func (f *Filter) corsHeaders(c *engine.Ctx) {
	origin := c.Request.Header.PeekBytes(hdrOrigin)
	if !f.corsOn() || len(origin) == 0 || !f.allowed(origin) {
		return
	}
	rh := &c.Response.Header
	f.allowOrigin(rh, origin)
	if len(f.expose) > 0 {
		rh.SetBytesKV(hdrExposeHeaders, f.expose)
	}
}

// allowOrigin names the allowed origin: "*" when any is allowed without credentials, else the
// request's own, with "Vary: Origin" so caches keep the answers for different origins apart.
func (f *Filter) allowOrigin(rh *fasthttp.ResponseHeader, origin []byte) {
	if f.allowAll && !f.credentials {
		rh.SetBytesKV(hdrAllowOrigin, valStar)
		return
	}
	rh.SetBytesKV(hdrAllowOrigin, origin)
	rh.AddBytesKV(hdrVary, hdrOrigin)
	if f.credentials {
		rh.SetBytesKV(hdrAllowCredentials, valTrue)
	}
}
