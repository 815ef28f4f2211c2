package engine

import (
	"fmt"
)

// Pipeline is a built `pipeline` block: its match, its filters in order and its Terminal.
type Pipeline struct {
	Name        string
	Match       MatchConfig
	StripPrefix string
	// Upstream is the name of the upstream its balancer stage uses.
	Upstream string

	stages   []Stage
	terminal Terminal
	// observer is the gateway's (nil: telemetry off, nothing is called).
	observer Observer
}

// NewPipeline assembles a pipeline. It allocates what the request loop needs up front.
func NewPipeline(name string, match MatchConfig, stripPrefix string, stages []Stage, term Terminal) *Pipeline {
	if term == nil {
		panic(fmt.Sprintf("engine: pipeline %q has no terminal", name))
	}
	if match.PathPrefix == "" {
		match.PathPrefix = "/"
	}
	return &Pipeline{Name: name, Match: match, StripPrefix: stripPrefix, stages: stages, terminal: term}
}

// Stages returns the pipeline's filters in order. Don't modify the slice.
func (p *Pipeline) Stages() []Stage { return p.stages }

// Serve runs the request phase of every filter in order, the Terminal unless a filter answered,
// then the response phase in reverse order for every filter whose request phase ran.
func (p *Pipeline) Serve(c *Ctx) {
	c.Pipeline = p
	obs := p.observer
	ran, answered := 0, false
	for i := range p.stages {
		st := &p.stages[i]
		ran = i + 1
		var v Verdict
		if obs == nil {
			v = st.Filter.OnRequest(c)
		} else {
			tok := obs.StartStage(c, st, PhaseRequest)
			v = st.Filter.OnRequest(c)
			obs.EndStage(c, st, PhaseRequest, tok, v)
		}
		if v == Respond {
			answered = true
			break
		}
	}
	if !answered {
		p.terminal.Serve(c)
	}
	for i := ran - 1; i >= 0; i-- {
		st := &p.stages[i]
		if obs == nil {
			st.Filter.OnResponse(c)
		} else {
			tok := obs.StartStage(c, st, PhaseResponse)
			st.Filter.OnResponse(c)
			obs.EndStage(c, st, PhaseResponse, tok, Continue)
		}
	}
}
