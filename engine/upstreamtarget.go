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
	// PathBuf and QueryBuf are memory for Path and Query to be appended to: NewUpstreamTarget
	// empties them and keeps their capacity with the Ctx from one request to the next.
	PathBuf, QueryBuf []byte
}

// UpstreamTargetKey holds the request's *UpstreamTarget, when a filter set one
// (NewUpstreamTarget). It stays valid until the request ends.
var UpstreamTargetKey = NewKey[*UpstreamTarget]("upstream_target")

// maxKeptTargetBuf: a buffer of this capacity or more is not kept for the next request, so a rare
// huge path does not stay with a pooled Ctx. A power of two: NewUpstreamTarget tests both
// buffers with one comparison of their capacities' bitwise OR.
const maxKeptTargetBuf = 4 << 10

// NewUpstreamTarget returns the request's UpstreamTarget, empty (the client's request-target
// and Host go upstream unchanged) but for its buffers' capacity, and sets it in
// UpstreamTargetKey for the balancer. Its memory belongs to the Ctx, so the filter filling it
// needs neither a pool nor a response phase to give it back: it is the request's until
// ReleaseCtx, then the next request's.
func (c *Ctx) NewUpstreamTarget() *UpstreamTarget {
	t := &c.target
	t.Path, t.Query, t.QuerySet, t.Host = nil, nil, false, nil
	t.PathBuf, t.QueryBuf = t.PathBuf[:0], t.QueryBuf[:0]
	if cap(t.PathBuf)|cap(t.QueryBuf) >= maxKeptTargetBuf { // one test: either is that large
		t.PathBuf, t.QueryBuf = nil, nil
	}
	UpstreamTargetKey.Set(c, t)
	return t
}
