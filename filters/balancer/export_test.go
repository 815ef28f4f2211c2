package balancer

// SetResolver makes upstreams built from now on resolve names with r; the returned function
// restores the previous resolver.
func SetResolver(r Resolver) (restore func()) {
	prev := resolver.Swap(&r)
	return func() { resolver.Store(prev) }
}

// ErrClientGone is errClientGone, for the tests.
var ErrClientGone = errClientGone

// CircuitOpen is the value of sluice_upstream_circuit_open_total{upstream,limit}.
func CircuitOpen(upstream, limit string) float64 {
	return value(mCircuitOpen.WithLabelValues(upstream, limit))
}
