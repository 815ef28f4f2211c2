package engine

import (
	"bytes"
	"fmt"
	"runtime/debug"

	"github.com/sluice-gateway/sluice/engine/ascii"
)

// Pipeline is a built `pipeline` block: its match, its filters in order and its Terminal.
type Pipeline struct {
	Name        string
	Match       MatchConfig
	StripPrefix string
	// Upstream is the name of the upstream its balancer stage uses.
	Upstream string
	// Upgrades lists the protocols a request may switch to (the pipeline's upgrades attribute);
	// nil: DefaultUpgrades. See AllowsUpgrade.
	Upgrades []string
	// ForwardClientCert is the pipeline's forward_client_cert ("": the server's; clientcert.go).
	ForwardClientCert string
	// Overrides are the balancer block's timeouts and retry settings (traffic.go).
	Overrides Overrides
	// TraceSampleRatio is the pipeline's trace_sample_ratio (nil: the telemetry block's).
	TraceSampleRatio *float64

	stages   []Stage
	terminal Terminal
	// observer is the gateway's (nil: telemetry off, nothing is called).
	observer Observer
	// observerState is what the observer keeps for this pipeline (see SetObserverState).
	observerState any
	// noTimes turns the per-stage timings off (stagetimes.go).
	noTimes bool
	// responders are the indices of the stages that have a response phase (not RequestOnly),
	// ascending, and respondersIn[n] is how many of them are among the first n stages: worked
	// out when the pipeline is built, so that the response phase visits only them and a request
	// whose stages have none skips it at the cost of one load.
	responders   []int
	respondersIn []int
	// passPhases is how many phases a request records that runs every phase of p and no other
	// (each request phase, the terminal, each response phase): see Ctx.StageTimesPass.
	passPhases int
}

// SetObserverState keeps v, the observer's own state for this pipeline (its metrics handles and
// span names), so that the observer finds it on every request without a lookup. Call it before
// the pipeline serves.
func (p *Pipeline) SetObserverState(v any) { p.observerState = v }

// ObserverState returns what SetObserverState kept, or nil.
func (p *Pipeline) ObserverState() any { return p.observerState }

// NewPipeline assembles a pipeline. It allocates what the request loop needs up front.
func NewPipeline(name string, match MatchConfig, stripPrefix string, stages []Stage, term Terminal) *Pipeline {
	if term == nil {
		panic(fmt.Sprintf("engine: pipeline %q has no terminal", name))
	}
	if match.PathPrefix == "" {
		match.PathPrefix = "/"
	}
	p := &Pipeline{Name: name, Match: match, StripPrefix: stripPrefix, stages: stages, terminal: term}
	p.respondersIn = make([]int, len(stages)+1)
	for i := range stages {
		if !stages[i].RequestOnly() {
			p.responders = append(p.responders, i)
		}
		p.respondersIn[i+1] = len(p.responders)
	}
	p.passPhases = len(stages) + 1 + len(p.responders)
	return p
}

// DefaultUpgrades is a pipeline's upgrades when its config does not set them.
var DefaultUpgrades = []string{"websocket"}

// AllowsUpgrade reports whether a request on p may switch to protocol, one element of an
// Upgrade header ("websocket", "h2c", "foo/2": a version after '/' is ignored), compared ASCII
// case-insensitively. A nil p allows the default upgrades.
func (p *Pipeline) AllowsUpgrade(protocol []byte) bool {
	if i := bytes.IndexByte(protocol, '/'); i >= 0 {
		protocol = protocol[:i]
	}
	protocol = bytes.TrimSpace(protocol)
	list := DefaultUpgrades
	if p != nil && p.Upgrades != nil {
		list = p.Upgrades
	}
	for _, u := range list {
		if len(u) == len(protocol) && ascii.EqualFold(protocol, []byte(u)) {
			return true
		}
	}
	return false
}

// Stages returns the pipeline's filters in order. Don't modify the slice.
func (p *Pipeline) Stages() []Stage { return p.stages }

// Serve runs the request phase of every filter in order, the Terminal unless a filter answered,
// then the response phase in reverse order for every filter whose request phase ran, but for
// RequestOnly filters, which have none. A panic in any stage answers 500 (a *PanicError in
// c.Failure) and the response phases still run, so filters that hold per-request resources (a
// Wasm instance) always get them back.
func (p *Pipeline) Serve(c *Ctx) {
	c.Pipeline = p
	ran := p.requestPhase(c)
	if n := p.respondersIn[ran]; n > 0 {
		p.responsePhase(c, n) // not called (no recover armed) when no stage that ran has one
	}
}

// requestPhase runs the request phases and the Terminal; it returns how many stages ran,
// counting one that panicked.
func (p *Pipeline) requestPhase(c *Ctx) (ran int) {
	inTerminal := false
	defer func() {
		if r := recover(); r != nil {
			at := ran - 1
			if inTerminal {
				at = -1
			}
			c.Fail(500, c.panicked(p, at, r))
		}
	}()
	obs := p.observer
	t := &c.times
	for i := range p.stages {
		st := &p.stages[i]
		ran = i + 1
		var v Verdict
		switch {
		case obs == nil:
			v = st.Filter.OnRequest(c)
		case t.quick(): // stagetimes.go: timed, starting where the last phase ended
			k := t.open(p, i, PhaseRequest)
			v = st.Filter.OnRequest(c)
			if v == Continue {
				t.closeAt(k, c.now())
			} else {
				c.endStage(k, v, true)
			}
		case !t.hooks(): // the slot is all the observer reads
			k := c.beginStage(p, i, PhaseRequest, true)
			v = st.Filter.OnRequest(c)
			c.endStage(k, v, true)
		default:
			tok := obs.StartStage(c, st, PhaseRequest)
			k := c.beginStage(p, i, PhaseRequest, tok == nil)
			v = st.Filter.OnRequest(c)
			c.endStage(k, v, tok == nil)
			obs.EndStage(c, st, PhaseRequest, tok, v)
		}
		if v == Respond {
			return ran
		}
	}
	inTerminal = true
	if obs == nil {
		p.terminal.Serve(c)
		return ran
	}
	if t.quick() {
		k := t.open(p, TerminalStage, PhaseRequest)
		p.terminal.Serve(c)
		t.closeAt(k, c.now())
		return ran
	}
	k := c.beginStage(p, TerminalStage, PhaseRequest, true)
	p.terminal.Serve(c)
	c.endStage(k, Continue, true)
	return ran
}

// responsePhase runs the response phases of the stages p.responders[n-1] down to
// p.responders[0]. A stage that panics answers 500 and the stages before it still run.
func (p *Pipeline) responsePhase(c *Ctx, n int) {
	j := n - 1
	defer func() {
		if r := recover(); r != nil {
			c.Fail(500, c.panicked(p, p.responders[j], r))
			if j > 0 {
				p.responsePhase(c, j)
			}
		}
	}()
	obs := p.observer
	t := &c.times
	for ; j >= 0; j-- {
		i := p.responders[j]
		st := &p.stages[i]
		switch {
		case obs == nil:
			st.Filter.OnResponse(c)
		case t.quick():
			k := t.open(p, i, PhaseResponse)
			st.Filter.OnResponse(c)
			t.closeAt(k, c.now())
		case !t.hooks():
			k := c.beginStage(p, i, PhaseResponse, true)
			st.Filter.OnResponse(c)
			c.endStage(k, Continue, true)
		default:
			tok := obs.StartStage(c, st, PhaseResponse)
			k := c.beginStage(p, i, PhaseResponse, tok == nil)
			st.Filter.OnResponse(c)
			c.endStage(k, Continue, tok == nil)
			obs.EndStage(c, st, PhaseResponse, tok, Continue)
		}
	}
}

// PanicError is the failure recorded when a stage panics.
type PanicError struct {
	Pipeline string
	Stage    string // the stage's label, or "balancer" for the Terminal
	Value    any
	Stack    []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic in pipeline %q, stage %s: %v", e.Pipeline, e.Stage, e.Value)
}

// panicked describes a panic in stage at of p (-1: the Terminal) and notes that c's request is
// no pass (StageTimesPass): the phase that panicked is not Done. (A call on the line that made
// the PanicError before, so that the loops' line offsets, which release.pgo names its call sites
// by, stay as they were.)
func (c *Ctx) panicked(p *Pipeline, at int, r any) *PanicError {
	c.times.irregular = true
	return newPanicError(p, at, r)
}

// newPanicError describes a panic in stage at (-1: the Terminal).
func newPanicError(p *Pipeline, at int, r any) *PanicError {
	stage := "balancer"
	if at >= 0 && at < len(p.stages) {
		stage = p.stages[at].Label()
	}
	return &PanicError{Pipeline: p.Name, Stage: stage, Value: r, Stack: debug.Stack()}
}
