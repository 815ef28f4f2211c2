package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine"
)

// Passes: most requests run every phase of their pipeline and every request phase continues
// (engine.Ctx.StageTimesPass). Such a request is counted once, in its pipeline's passes, rather
// than once per phase: each of its stages' "continue" verdict and the dashboard's phase counts
// of the pipeline's stages and terminal follow from the one count. The dashboard adds the passes
// to its per-phase counts when it reads them (PipelineStats); the verdict series get them folded
// in (flushPasses) whenever sluice_filter_verdicts_total is collected, so a scrape reads exact
// figures and the request path makes one atomic add a request for them instead of one or two a
// phase.

// passRetired is set in pipeInfo.passes once its pipeline is no longer attached and its passes
// were folded for the last time: a request that then finds it set counts its phases one by one.
const passRetired = 1 << 63

// passList is every pipeInfo whose passes may still need folding into the verdict series.
var passList struct {
	mu   sync.Mutex
	list []*pipeInfo
}

// trackPasses lists pi for flushPasses.
func trackPasses(pi *pipeInfo) {
	if len(pi.stages) == 0 {
		return // no filter, no verdict series
	}
	passList.mu.Lock()
	passList.list = append(passList.list, pi)
	passList.mu.Unlock()
}

// pass counts a request that was a pass of pi's pipeline; false when the pipeline is retired
// (the caller then counts the request's phases one by one).
func (pi *pipeInfo) pass() bool {
	if v := pi.passes.Add(1); v&passRetired != 0 {
		pi.passes.Add(^uint64(0)) // take it back: the dashboard reads the passes too
		return false
	}
	return true
}

// dashPasses is how many passes the dashboard's phase counts of p lack (none while the stage
// timings are off: the dashboard then counts nothing).
func (pi *pipeInfo) dashPasses(p *engine.Pipeline) uint64 {
	if !p.StageTimesOn() {
		return 0
	}
	return pi.passes.Load() &^ passRetired
}

// flushPasses adds the passes counted since the last flush to each stage's "continue" verdict
// series. A pipeline no longer attached (its Telemetry attached another gateway since, or it was
// never attached) is retired by its flush: its later requests count their phases themselves.
func flushPasses() {
	passList.mu.Lock()
	defer passList.mu.Unlock()
	keep := passList.list[:0]
	for _, pi := range passList.list {
		var v uint64
		retire := pi.gen != pi.owner.t.gen.Load()
		if retire {
			v = pi.passes.Or(passRetired)
		} else {
			v = pi.passes.Load()
		}
		v &^= passRetired
		if n := v - pi.flushed; n > 0 {
			pi.flushed = v
			for i := range pi.stages {
				pi.stages[i].verdicts[0].Add(float64(n))
			}
		}
		if !retire {
			keep = append(keep, pi)
		}
	}
	clear(passList.list[len(keep):])
	passList.list = keep
}

// verdictsCollector is sluice_filter_verdicts_total as the registry collects it: the passes
// folded in first.
type verdictsCollector struct{ vec *prometheus.CounterVec }

func (v verdictsCollector) Describe(ch chan<- *prometheus.Desc) { v.vec.Describe(ch) }

func (v verdictsCollector) Collect(ch chan<- prometheus.Metric) {
	flushPasses()
	v.vec.Collect(ch)
}
