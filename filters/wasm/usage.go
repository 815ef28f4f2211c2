package wasm

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// The pool's state, read when scraped from the filters that exist (generations): instances
// idle (in the pool) and in use (pinned by a request), and the guests' linear memory. Memory
// is tracked per instance when it is made and each time it goes back to the pool (a guest
// grows its memory only while it runs), so nothing reads a running guest's memory.
type usageCollector struct{ idle, inUse, memory *prometheus.Desc }

var usage = &usageCollector{
	idle:   prometheus.NewDesc("sluice_wasm_instances_idle", "Guest instances idle in the pool, by pipeline and filter.", labels, nil),
	inUse:  prometheus.NewDesc("sluice_wasm_instances_in_use", "Guest instances pinned by a request, by pipeline and filter.", labels, nil),
	memory: prometheus.NewDesc("sluice_wasm_memory_bytes", "Linear memory of the live guest instances, by pipeline and filter (as of each instance's last return to the pool).", labels, nil),
}

func init() { metrics.Registry.MustRegister(usage) }

func (u *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- u.idle
	ch <- u.inUse
	ch <- u.memory
}

func (u *usageCollector) Collect(ch chan<- prometheus.Metric) {
	type sums struct{ idle, live, mem float64 }
	by := map[string]*sums{}
	generations.Lock()
	for slot, set := range generations.m {
		s := &sums{}
		for f := range set {
			f.pool.mu.Lock()
			s.idle += float64(len(f.pool.idle))
			f.pool.mu.Unlock()
			s.live += float64(f.live.Load())
			s.mem += float64(f.memBytes.Load())
		}
		by[slot] = s
	}
	generations.Unlock()
	for slot, s := range by {
		pipeline, label, _ := strings.Cut(slot, "\x00")
		ch <- prometheus.MustNewConstMetric(u.idle, prometheus.GaugeValue, s.idle, pipeline, label)
		ch <- prometheus.MustNewConstMetric(u.inUse, prometheus.GaugeValue, max(s.live-s.idle, 0), pipeline, label)
		ch <- prometheus.MustNewConstMetric(u.memory, prometheus.GaugeValue, s.mem, pipeline, label)
	}
}

// noteMemory records in's memory size now (made, or back from a request) in its filter's total.
func (f *Filter) noteMemory(in *instance) {
	size := int64(len(in.memory)) // the guest's memory, as wazero holds it (memview.go)
	if size != in.memSize {
		f.memBytes.Add(size - in.memSize)
		in.memSize = size
	}
}

// forgetMemory takes a discarded instance's memory out of the total.
func (f *Filter) forgetMemory(in *instance) {
	f.memBytes.Add(-in.memSize)
	in.memSize = 0
}
