package engine

// Verdict is a filter's decision after its request phase.
type Verdict uint8

const (
	// Continue passes the request to the next stage.
	Continue Verdict = iota
	// Respond means the filter wrote c.Response itself (a local reply) or called c.Fail: later
	// stages are skipped and the response phase starts from this filter.
	Respond
)

func (v Verdict) String() string {
	if v == Respond {
		return "respond"
	}
	return "continue"
}

// Filter is one stage of a pipeline. One value serves every request of its pipeline concurrently;
// per-request state belongs in Ctx (see Key).
type Filter interface {
	// OnRequest runs in pipeline order, before the Terminal.
	OnRequest(c *Ctx) Verdict
	// OnResponse runs in reverse order, for every filter whose OnRequest ran, including the one
	// that answered.
	OnResponse(c *Ctx)
}

// RequestOnly is implemented by a Filter whose OnResponse does nothing. The pipeline skips
// its response phase: OnResponse is not called, timed, counted or given a span.
type RequestOnly interface {
	Filter
	RequestOnly()
}

// Terminal ends a pipeline and must leave a complete response in c.Response.
type Terminal interface {
	Serve(c *Ctx)
}

// Stage is a filter in its place in a pipeline.
type Stage struct {
	Kind   string // the registered kind, e.g. "jwt"
	Name   string // the filter's own name where it has one (wasm "name"), else ""
	Filter Filter
}

// RequestOnly reports whether the stage's filter has no response phase (it implements the
// RequestOnly interface).
func (s Stage) RequestOnly() bool {
	_, ok := s.Filter.(RequestOnly)
	return ok
}

// Label is how logs, spans and metrics name the stage: "kind" or "kind:name".
func (s Stage) Label() string {
	if s.Name == "" {
		return s.Kind
	}
	return s.Kind + ":" + s.Name
}

// TerminalFunc adapts a function to a Terminal.
type TerminalFunc func(c *Ctx)

// Serve calls f(c).
func (f TerminalFunc) Serve(c *Ctx) { f(c) }
