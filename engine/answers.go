package engine

import (
	"errors"
	"fmt"
)

// AlwaysAnswers is implemented by the config struct of a filter kind whose request phase
// answers every request itself (respond, redirect). A pipeline whose last filter is such a
// kind needs no balancer or route block: nothing could ever reach it.
type AlwaysAnswers interface {
	AlwaysAnswers() bool
}

// EndsInAnswer reports whether ps has no balancer or route and its last filter always answers.
func (ps *PipelineSpec) EndsInAnswer() bool {
	if ps.Upstream != "" || ps.Route != nil || ps.Balancer != nil || len(ps.Filters) == 0 {
		return false
	}
	a, ok := ps.Filters[len(ps.Filters)-1].Config.(AlwaysAnswers)
	return ok && a.AlwaysAnswers()
}

// answeredTerminal ends a pipeline whose last filter always answers. It runs only if that
// filter broke its promise, and then answers 500 with the reason in the log.
type answeredTerminal struct{ pipeline string }

var errNotAnswered = errors.New("the pipeline's last filter did not answer the request, and the pipeline has no balancer")

func (t answeredTerminal) Serve(c *Ctx) {
	c.Fail(500, fmt.Errorf("pipeline %q: %w", t.pipeline, errNotAnswered))
}
