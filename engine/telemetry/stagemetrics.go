package telemetry

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// Per-filter metrics: how long each filter's phases take (on one request in stageTimeEvery),
// and what each filter's request phase decided (continue, or answered, by status class), on
// every request. The series are resolved when the pipeline is attached, found by the stage's
// pointer, with no lookup by name per request.
var (
	filterDuration = metrics.NewHistogramVec("sluice_filter_duration_seconds",
		"Time spent in one filter phase, observed on one request in 16, by pipeline, filter (its kind, or kind:name; #N for the Nth of the same label in a pipeline) and phase (request or response).",
		[]float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		"pipeline", "filter", "phase")
	filterVerdicts = metrics.NewCounterVecOn(prometheus.CounterOpts{
		Name: "sluice_filter_verdicts_total",
		Help: "Request-phase decisions by pipeline, filter and verdict: continue, or the class of the status the filter answered with (1xx..5xx, other).",
	}, "pipeline", "filter", "verdict")
)

// verdictNames index: 0 continue, 1..5 answered 1xx..5xx, 6 answered outside 100..599.
var verdictNames = [7]string{"continue", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// stageMetrics are one stage's series.
type stageMetrics struct {
	latency  [2]*metrics.Histogram // by engine.Phase
	verdicts [len(verdictNames)]*metrics.LazyCounter
}

// newStageMetrics resolves the series of every stage of p, labelled so that two stages with the
// same label in one pipeline stay apart.
func newStageMetrics(p *engine.Pipeline) map[*engine.Stage]*stageMetrics {
	stages := p.Stages()
	out := make(map[*engine.Stage]*stageMetrics, len(stages))
	seen := map[string]int{}
	for i := range stages {
		s := &stages[i]
		label := s.Label()
		if seen[label]++; seen[label] > 1 {
			label += "#" + strconv.Itoa(seen[label])
		}
		m := &stageMetrics{}
		for _, ph := range []engine.Phase{engine.PhaseRequest, engine.PhaseResponse} {
			m.latency[ph] = filterDuration.WithLabelValues(p.Name, label, ph.String())
		}
		for v, name := range verdictNames {
			m.verdicts[v] = metrics.NewLazyCounter(filterVerdicts, p.Name, label, name)
		}
		out[s] = m
	}
	return out
}

// clockBase is what the stage clock counts from: time.Since reads only the monotonic clock,
// where time.Now reads the wall clock too, at twice the cost.
var clockBase = time.Now()

// stageTimeEvery is the share of requests whose filter phases are timed: one in
// stageTimeEvery. A clock read costs 25-40 ns here, and timing every phase of a three-filter
// pipeline took about 300 ns per request; one request in 16 gives the same latency
// distribution at a sixteenth of the cost. The verdict counters count every request.
const stageTimeEvery = 16

// stageStarted notes when a filter phase began (in the Ctx's observer state, kept with the Ctx
// from one request to the next), on the requests chosen for timing. A phase that follows
// another of the same kind starts when that one ended, a clock read less: between them is only
// the pipeline's loop. The first response phase reads the clock again: the terminal (or the
// answering filter) ran before it.
func stageStarted(c *engine.Ctx, ph engine.Phase) {
	st := acquireState(c)
	if !st.stageInReq {
		st.stageInReq = true
		st.stageN++
		st.stageTimed = st.stageN%stageTimeEvery == 0
	} else if !st.stageTimed || st.stagePhase == ph {
		return
	}
	st.stagePhase = ph
	if st.stageTimed {
		st.stageT0 = time.Since(clockBase)
	}
}

// stageEnded records a filter phase's time and, for a request phase, its verdict.
func (o *observer) stageEnded(c *engine.Ctx, s *engine.Stage, ph engine.Phase, v engine.Verdict) {
	st, ok := c.ObserverState.(*reqState)
	if !ok || c.Pipeline == nil {
		return
	}
	m := o.pipe(c.Pipeline).stages[s]
	if m == nil {
		return
	}
	if st.stageTimed {
		now := time.Since(clockBase)
		m.latency[ph].Observe(now - st.stageT0)
		st.stageT0 = now
	}
	if ph != engine.PhaseRequest {
		return
	}
	i := 0
	if v == engine.Respond {
		i = c.Response.StatusCode() / 100
		if i < 1 || i > 5 {
			i = len(verdictNames) - 1
		}
	}
	m.verdicts[i].Inc()
}

// stagesDone ends the request's chain of phases: the next request's first phase reads the
// clock.
func stagesDone(c *engine.Ctx) {
	if st, ok := c.ObserverState.(*reqState); ok {
		st.stageInReq = false
	}
}

// deleteStageSeries removes the per-filter series of a pipeline a reload removed.
func deleteStageSeries(pipeline string) {
	l := prometheus.Labels{"pipeline": pipeline}
	filterDuration.DeletePartialMatch(l)
	filterVerdicts.DeletePartialMatch(l)
}
