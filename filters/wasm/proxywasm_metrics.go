package wasm

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// Metrics a proxy-wasm guest defines (proxy_define_metric) are exported on /metrics as
// sluice_wasm_guest_counter, sluice_wasm_guest_gauge and sluice_wasm_guest_histogram, labelled
// with the pipeline, the filter and the guest's own name for the metric. A filter may define at
// most pwMaxMetrics; all instances of a filter share them (a name defined twice is one metric), and
// so does the filter a reload puts in its place.

// Metric types of proxy_define_metric.
const (
	pwCounter   = 0
	pwGauge     = 1
	pwHistogram = 2
)

// pwBuckets are the histogram's upper bounds: powers of 4 from 1 to 4^15 (about 1e9), which
// fits both durations in milliseconds and sizes in bytes.
var pwBuckets = func() []float64 {
	b := make([]float64, 16)
	for i := range b {
		b[i] = math.Pow(4, float64(i))
	}
	return b
}()

type pwMetric struct {
	kind  uint8
	name  string
	value atomic.Int64 // counter or gauge
	// histogram
	mu     sync.Mutex
	counts [16]uint64
	count  uint64
	sum    float64
}

// pwMetrics is one filter's handle on the metrics of its slot (pipeline and label): a filter and
// the one a reload replaces it with share them, so a guest's counters go on counting over a reload
// and /metrics lists each once.
type pwMetrics struct{ set *pwMetricSet }

type pwMetricSet struct {
	pipeline, filter string
	refs             int // filters using the set; guarded by pwSets
	mu               sync.Mutex
	list             []*pwMetric
	byName           map[string]uint32
}

// pwSets holds the metric sets of the slots that have a live proxy-wasm filter.
var pwSets = struct {
	sync.Mutex
	m map[string]*pwMetricSet
}{m: map[string]*pwMetricSet{}}

func (m *pwMetrics) init(pipeline, filter string) {
	slot := slotOf(pipeline, filter)
	pwSets.Lock()
	defer pwSets.Unlock()
	set := pwSets.m[slot]
	if set == nil {
		set = &pwMetricSet{pipeline: pipeline, filter: filter, byName: map[string]uint32{}}
		pwSets.m[slot] = set
	}
	set.refs++
	m.set = set
}

// unregister drops the filter's hold on its slot's metrics; the last one gone takes them off
// /metrics.
func (m *pwMetrics) unregister() {
	pwSets.Lock()
	defer pwSets.Unlock()
	m.set.refs--
	if m.set.refs == 0 {
		delete(pwSets.m, slotOf(m.set.pipeline, m.set.filter))
	}
}

// define returns the id of the metric kind+name, creating it if there is room.
func (m *pwMetrics) define(kind uint8, name string) (uint32, bool) {
	set := m.set
	set.mu.Lock()
	defer set.mu.Unlock()
	key := string(rune('0'+kind)) + name
	if id, ok := set.byName[key]; ok {
		return id, true
	}
	if len(set.list) >= pwMaxMetrics {
		return 0, false
	}
	set.list = append(set.list, &pwMetric{kind: kind, name: name})
	id := uint32(len(set.list))
	set.byName[key] = id
	pwCollector.once.Do(func() { metrics.Registry.MustRegister(pwCollector) })
	return id, true
}

func (m *pwMetrics) metric(id uint32) *pwMetric {
	set := m.set
	set.mu.Lock()
	defer set.mu.Unlock()
	if id == 0 || int(id) > len(set.list) {
		return nil
	}
	return set.list[id-1]
}

func (m *pwMetrics) increment(id uint32, delta int64) uint64 {
	mt := m.metric(id)
	switch {
	case mt == nil:
		return pwNotFound
	case mt.kind == pwHistogram, mt.kind == pwCounter && delta < 0:
		return pwBadArgument
	}
	mt.value.Add(delta)
	return pwOK
}

func (m *pwMetrics) record(id uint32, v uint64) uint64 {
	mt := m.metric(id)
	switch {
	case mt == nil:
		return pwNotFound
	case mt.kind == pwCounter, mt.kind == pwGauge:
		mt.value.Store(int64(v))
	default:
		mt.mu.Lock()
		for i, b := range pwBuckets {
			if float64(v) <= b {
				mt.counts[i]++
				break
			}
		}
		mt.count++
		mt.sum += float64(v)
		mt.mu.Unlock()
	}
	return pwOK
}

func (m *pwMetrics) get(id uint32) (uint64, uint64) {
	mt := m.metric(id)
	switch {
	case mt == nil:
		return 0, pwNotFound
	case mt.kind == pwHistogram:
		return 0, pwBadArgument
	}
	return uint64(mt.value.Load()), pwOK
}

// pwMetricsCollector exports the metrics of every live proxy-wasm filter.
type pwMetricsCollector struct{ once sync.Once }

// pwCollector is registered with the first metric a guest defines, so /metrics lists no empty
// families before.
var pwCollector = &pwMetricsCollector{}

var (
	pwLabels  = []string{"pipeline", "filter", "name"}
	pwDescCtr = prometheus.NewDesc("sluice_wasm_guest_counter", "Counters proxy-wasm guests define (proxy_define_metric).", pwLabels, nil)
	pwDescGau = prometheus.NewDesc("sluice_wasm_guest_gauge", "Gauges proxy-wasm guests define (proxy_define_metric).", pwLabels, nil)
	pwDescHis = prometheus.NewDesc("sluice_wasm_guest_histogram", "Histograms proxy-wasm guests define (proxy_define_metric).", pwLabels, nil)
)

func (c *pwMetricsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pwDescCtr
	ch <- pwDescGau
	ch <- pwDescHis
}

func (c *pwMetricsCollector) Collect(ch chan<- prometheus.Metric) {
	pwSets.Lock()
	sets := make([]*pwMetricSet, 0, len(pwSets.m))
	for _, set := range pwSets.m {
		sets = append(sets, set)
	}
	pwSets.Unlock()
	for _, set := range sets {
		set.mu.Lock()
		list := append([]*pwMetric(nil), set.list...)
		set.mu.Unlock()
		for _, mt := range list {
			labels := []string{set.pipeline, set.filter, mt.name}
			switch mt.kind {
			case pwCounter:
				ch <- prometheus.MustNewConstMetric(pwDescCtr, prometheus.CounterValue, float64(mt.value.Load()), labels...)
			case pwGauge:
				ch <- prometheus.MustNewConstMetric(pwDescGau, prometheus.GaugeValue, float64(mt.value.Load()), labels...)
			default:
				mt.mu.Lock()
				buckets := make(map[float64]uint64, len(pwBuckets))
				var cum uint64
				for i, b := range pwBuckets {
					cum += mt.counts[i]
					buckets[b] = cum
				}
				count, sum := mt.count, mt.sum
				mt.mu.Unlock()
				ch <- prometheus.MustNewConstHistogram(pwDescHis, count, sum, buckets, labels...)
			}
		}
	}
}
