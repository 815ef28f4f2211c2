package engine

// SpanAnnotator is implemented by an Observer that records what a filter decided (a cache hit,
// the chosen encoding, the rate-limit policy) on the span of the filter phase running, or on the
// request's span when filter spans are off. engine/telemetry implements it.
type SpanAnnotator interface {
	AnnotateString(c *Ctx, key, value string)
	AnnotateInt(c *Ctx, key string, value int64)
	// Recording reports whether c's request is sampled: annotations are recorded.
	Recording(c *Ctx) bool
}

// Recording reports whether annotations of this request are recorded (it is traced and sampled):
// a filter checks it before work done only for an annotation (reading a clock, a computation).
func (c *Ctx) Recording() bool {
	if c.ObserverState == nil || c.Pipeline == nil {
		return false
	}
	a, ok := c.Pipeline.observer.(SpanAnnotator)
	return ok && a.Recording(c)
}

// Annotate records key = value on the running filter phase's span when the request is traced
// and sampled. Untraced, it costs two loads and a compare and allocates nothing; call it with
// constant keys (by convention "sluice.<kind>.<what>") and values that need no formatting.
func (c *Ctx) Annotate(key, value string) {
	if c.ObserverState == nil || c.Pipeline == nil {
		return
	}
	if a, ok := c.Pipeline.observer.(SpanAnnotator); ok {
		a.AnnotateString(c, key, value)
	}
}

// AnnotateInt is Annotate for an integer value.
func (c *Ctx) AnnotateInt(key string, value int64) {
	if c.ObserverState == nil || c.Pipeline == nil {
		return
	}
	if a, ok := c.Pipeline.observer.(SpanAnnotator); ok {
		a.AnnotateInt(c, key, value)
	}
}
