package engine

// The values of the admin block's readyz_upstreams.
const (
	// ReadyzAnyAvailable: /readyz answers 503 while some upstream has no target that can take
	// traffic (none healthy, none free of ejection, or each one's latest connection attempt
	// failed recently): a load balancer in front then sends its traffic to a gateway that can
	// serve it.
	ReadyzAnyAvailable = "any_available"
	// ReadyzIgnore: /readyz does not look at upstreams (a gateway in front of optional
	// upstreams, or one whose load balancer must keep sending traffic regardless).
	ReadyzIgnore = "ignore"
)

// validateReadyz checks readyz_upstreams.
func (a *AdminConfig) validateReadyz() error {
	switch a.ReadyzUpstreams {
	case ReadyzAnyAvailable, ReadyzIgnore, "":
		return nil
	}
	return FieldErr("readyz_upstreams", "unknown mode %q: use %q or %q", a.ReadyzUpstreams, ReadyzAnyAvailable, ReadyzIgnore)
}
