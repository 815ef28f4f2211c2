package telemetry

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// Per-filter metrics: how long each filter's phases take (on the engine's timing samples, one
// request in engine.StageSampleEvery), and what each filter's request phase decided (continue,
// or answered, by status class), on every request. Both are read at EndRequest from the phases
// the pipeline recorded in the Ctx (engine/stagetimes.go): the observer is not called per phase
// (but for a traced request's spans), and the series are found by the stage's index in slices
// resolved when the pipeline was attached. A request that ran every phase of its pipeline, each
// continuing (a pass), counts its "continue" verdicts once for all its stages (passes.go).
var (
	filterDuration = metrics.NewHistogramVec("sluice_filter_duration_seconds",
		"Time spent in one filter phase, observed on one request in 16, by pipeline, filter (its kind, or kind:name; #N for the Nth of the same label in a pipeline) and phase (request or response).",
		[]float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		"pipeline", "filter", "phase")
	filterVerdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_filter_verdicts_total",
		Help: "Request-phase decisions by pipeline, filter and verdict: continue, or the class of the status the filter answered with (1xx..5xx, other).",
	}, []string{"pipeline", "filter", "verdict"})
)

// The registry collects the verdicts with the pipelines' passes folded in (passes.go).
func init() { metrics.Registry.MustRegister(verdictsCollector{filterVerdicts}) }

// verdictNames index: 0 continue, 1..5 answered 1xx..5xx, 6 answered outside 100..599.
var verdictNames = [7]string{"continue", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// stageMetrics are one stage's series.
type stageMetrics struct {
	latency  [2]*metrics.Histogram // by engine.Phase; a RequestOnly stage's response one is nil
	verdicts [len(verdictNames)]*metrics.LazyCounter
}

// newStageMetrics resolves the series of every stage of p, by stage index, labelled so that two
// stages with the same label in one pipeline stay apart.
func newStageMetrics(p *engine.Pipeline) []stageMetrics {
	stages := p.Stages()
	out := make([]stageMetrics, len(stages))
	seen := map[string]int{}
	for i := range stages {
		label := stages[i].Label()
		if seen[label]++; seen[label] > 1 {
			label += "#" + strconv.Itoa(seen[label])
		}
		m := &out[i]
		phases := []engine.Phase{engine.PhaseRequest, engine.PhaseResponse}
		if stages[i].RequestOnly() {
			// No response phase runs: no series that would stay empty (stagesDone never sees one).
			phases = phases[:1]
		}
		for _, ph := range phases {
			m.latency[ph] = filterDuration.WithLabelValues(p.Name, label, ph.String())
		}
		for v, name := range verdictNames {
			m.verdicts[v] = metrics.NewLazyCounter(filterVerdicts, p.Name, label, name)
		}
	}
	return out
}

// verdictIndex is the index in verdictNames of a request phase's verdict v, status the answer's
// when it answered.
func verdictIndex(v engine.Verdict, status int) int {
	if v != engine.Respond {
		return 0
	}
	if i := status / 100; i >= 1 && i <= 5 {
		return i
	}
	return len(verdictNames) - 1
}

// stagesDone records, at the end of c's request, what its filter phases did, from the phases
// the pipeline recorded (a request routed again by `route` ran stages of several pipelines,
// each counted on its own): the verdict of each request phase, the duration of each phase of a
// timing sample, and, while the stage timings are on, the dashboard's per-stage counters
// (dashstats.go). A phase that panicked (not Done) counts in none. served is the pipeInfo of
// the pipeline that served the request, which a pass's is (found once per request).
func (o *observer) stagesDone(c *engine.Ctx, served *pipeInfo) {
	ts := c.StageTimes()
	if len(ts) == 0 {
		return
	}
	sample, dash := c.StageTimesSample(), c.StageTimesTimed()
	if p := c.StageTimesPass(); p != nil {
		pi := served // the request's pipeInfo, found already (a pass ran no other pipeline)
		if pi.pipeline != p {
			pi = o.pipe(p)
		}
		if pi.pass() {
			pi.passDone(ts, sample, dash)
			return
		}
	}
	var last *engine.Pipeline
	var pi *pipeInfo
	var d *dashPipe // pi's dashboard counters while the stage timings are on, else nil
	for i := range ts {
		st := &ts[i]
		if !st.Done {
			continue
		}
		if st.Pipeline != last {
			last, pi, d = st.Pipeline, o.pipe(st.Pipeline), nil
			if dash {
				d = pi.dash
			}
		}
		if st.Index < 0 || int(st.Index) >= len(pi.stages) {
			// The terminal: no per-filter series.
			if d != nil && st.Index == engine.TerminalStage {
				d.terminal.count(st)
			}
			continue
		}
		if d != nil {
			d.stages[st.Index].count(st) // as many as pi.stages: both are p.Stages()'s
		}
		m := &pi.stages[st.Index]
		if sample {
			m.latency[st.Phase].Observe(time.Duration(st.End - st.Start))
		}
		if st.Phase == engine.PhaseRequest {
			m.verdicts[verdictIndex(st.Verdict, int(st.Status))].Inc()
		}
	}
}

// passDone records a pass of pi's pipeline (the caller counted it in pi.passes, which stands
// for its phase counts and verdicts): only the phases' times are left, on the dashboard and, for
// a timing sample, in the duration histogram.
func (pi *pipeInfo) passDone(ts []engine.StageTime, sample, dash bool) {
	if dash && len(ts) == len(pi.passNanos) {
		for i, n := range pi.passNanos {
			n.Add(uint64(ts[i].End - ts[i].Start))
		}
	}
	if sample {
		for i := range ts {
			if st := &ts[i]; st.Index >= 0 {
				pi.stages[st.Index].latency[st.Phase].Observe(time.Duration(st.End - st.Start))
			}
		}
	}
}

// passNanos are the dashboard's time counters a pass of p adds to, in the order of the phases it
// records (engine.Ctx.StageTimesPass): each stage's request phase, the terminal, then the
// response phases of the stages that have one, last stage first.
func passNanos(p *engine.Pipeline, d *dashPipe) []*atomic.Uint64 {
	stages := p.Stages()
	out := make([]*atomic.Uint64, 0, 2*len(stages)+1)
	for i := range stages {
		out = append(out, &d.stages[i].nanos[engine.PhaseRequest])
	}
	out = append(out, &d.terminal.nanos[engine.PhaseRequest])
	for i := len(stages) - 1; i >= 0; i-- {
		if !stages[i].RequestOnly() {
			out = append(out, &d.stages[i].nanos[engine.PhaseResponse])
		}
	}
	return out
}

// unrecordedStage counts the verdict of a filter phase past the bound of recorded phases
// (engine.MaxStageTimes), which the pipeline hands to EndStage instead: stagesDone does not
// see it. Such a phase is not timed.
func (o *observer) unrecordedStage(c *engine.Ctx, s *engine.Stage, ph engine.Phase, v engine.Verdict) {
	if ph != engine.PhaseRequest || c.Pipeline == nil {
		return
	}
	pi := o.pipe(c.Pipeline)
	if si := pi.stageNames[s]; si != nil && si.index < len(pi.stages) {
		pi.stages[si.index].verdicts[verdictIndex(v, c.Response.StatusCode())].Inc()
	}
}

// deleteStageSeries removes the per-filter series of a pipeline a reload removed.
func deleteStageSeries(pipeline string) {
	l := prometheus.Labels{"pipeline": pipeline}
	filterDuration.DeletePartialMatch(l)
	filterVerdicts.DeletePartialMatch(l)
}
