package metrics

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Pipelines a reload removed keep no series: once the last running gateway serving a name is
// closed, the request metrics are deleted outright (DeletePipeline), and every other family
// labelled by pipeline (a filter's counters) is left out of what Gatherer returns while the
// name is not served, so /metrics never reports a pipeline that no longer exists. A name that
// comes back is exposed again.
var pipes = struct {
	sync.Mutex
	live    map[string]int // how many running gateways serve a pipeline of this name
	retired map[string]bool
}{live: map[string]int{}, retired: map[string]bool{}}

// AddPipelines records that a gateway serving pipelines of these names runs.
func AddPipelines(names []string) {
	pipes.Lock()
	defer pipes.Unlock()
	for _, n := range names {
		pipes.live[n]++
		delete(pipes.retired, n)
	}
}

// RemovePipelines records that a gateway serving these names was closed, and returns the
// names no running gateway serves any more.
func RemovePipelines(names []string) (gone []string) {
	pipes.Lock()
	defer pipes.Unlock()
	for _, n := range names {
		if pipes.live[n]--; pipes.live[n] <= 0 {
			delete(pipes.live, n)
			pipes.retired[n] = true
			gone = append(gone, n)
		}
	}
	slices.Sort(gone)
	return gone
}

// Gatherer is Registry without the series of retired pipelines: what /metrics serves.
var Gatherer prometheus.Gatherer = prometheus.GathererFunc(gatherLive)

func gatherLive() ([]*dto.MetricFamily, error) {
	families, err := Registry.Gather()
	pipes.Lock()
	defer pipes.Unlock()
	if len(pipes.retired) == 0 {
		return families, err
	}
	out := families[:0]
	for _, f := range families {
		ms := f.Metric[:0]
		for _, m := range f.Metric {
			if !retiredSeries(m) {
				ms = append(ms, m)
			}
		}
		f.Metric = ms
		if len(ms) > 0 {
			out = append(out, f)
		}
	}
	return out, err
}

func retiredSeries(m *dto.Metric) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == "pipeline" {
			return pipes.retired[l.GetValue()]
		}
	}
	return false
}
