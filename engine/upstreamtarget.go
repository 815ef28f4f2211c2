package engine

// UpstreamTarget is what a filter (the rewrite kind) decided the upstream receives in place of
// the client's request-target and Host. Routing, authorization and the filters after it still
// see the client's request (Ctx.Path, Request); the balancer applies this only to the request it
// sends, and puts the client's back afterwards.
type UpstreamTarget struct {
	// Path, when not nil, is the path the upstream receives, verbatim: the pipeline's
	// strip_prefix is not applied on top of it.
	Path []byte
	// Query, when QuerySet, is the query the upstream receives (without '?'; empty: none).
	Query    []byte
	QuerySet bool
	// Host, when not nil, replaces the Host header sent upstream. X-Forwarded-Host still
	// carries the client's.
	Host []byte
}

// UpstreamTargetKey holds the request's *UpstreamTarget, when a filter set one. The setter owns
// the value and its buffers until its response phase.
var UpstreamTargetKey = NewKey[*UpstreamTarget]("upstream_target")
