// Package filters assembles the built-in filter kinds and the balancer into one registry: the
// one place that imports every kind.
package filters

import (
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/authorize"
	"github.com/sluice-gateway/sluice/filters/balancer"
	"github.com/sluice-gateway/sluice/filters/basicauth"
	"github.com/sluice-gateway/sluice/filters/cache"
	"github.com/sluice-gateway/sluice/filters/compress"
	"github.com/sluice-gateway/sluice/filters/cors"
	"github.com/sluice-gateway/sluice/filters/fault"
	"github.com/sluice-gateway/sluice/filters/forwardauth"
	"github.com/sluice-gateway/sluice/filters/grpcweb"
	"github.com/sluice-gateway/sluice/filters/headers"
	"github.com/sluice-gateway/sluice/filters/ipfilter"
	"github.com/sluice-gateway/sluice/filters/jwt"
	"github.com/sluice-gateway/sluice/filters/keyauth"
	"github.com/sluice-gateway/sluice/filters/otellog"
	"github.com/sluice-gateway/sluice/filters/ratelimit"
	"github.com/sluice-gateway/sluice/filters/redirect"
	"github.com/sluice-gateway/sluice/filters/respond"
	"github.com/sluice-gateway/sluice/filters/rewrite"
	"github.com/sluice-gateway/sluice/filters/wasm"
)

// Builtin returns a registry with every built-in kind.
func Builtin() *engine.Registry {
	r := engine.NewRegistry()
	headers.Register(r)
	balancer.Register(r)
	compress.Register(r)
	cache.Register(r)
	jwt.Register(r)
	otellog.Register(r)
	authorize.Register(r)
	ratelimit.Register(r)
	wasm.Register(r)
	grpcweb.Register(r)
	rewrite.Register(r)
	redirect.Register(r)
	respond.Register(r)
	fault.Register(r)
	cors.Register(r)
	ipfilter.Register(r)
	keyauth.Register(r)
	basicauth.Register(r)
	forwardauth.Register(r)
	return r
}
