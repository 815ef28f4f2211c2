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
// most pwMaxMetrics; all instances of a filter share them (a name defined twice is one metric).

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

type pwMetrics struct {
	pipeline, filter string
	mu               sync.Mutex
	list             []*pwMetric
	byName           map[string]uint32
	registered       bool
}

func (m *pwMetrics) init(pipeline, filter string) {
	m.pipeline, m.filter = pipeline, filter
	m.byName = map[string]uint32{}
}

// define returns the id of the metric kind+name, creating it if there is room.
func (m *pwMetrics) define(kind uint8, name string) (uint32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := string(rune('0'+kind)) + name
	if id, ok := m.byName[key]; ok {
		return id, true
	}
	if len(m.list) >= pwMaxMetrics {
		return 0, false
	}
	m.list = append(m.list, &pwMetric{kind: kind, name: name})
	id := uint32(len(m.list))
	m.byName[key] = id
	if !m.registered {
		m.registered = true
		pwCollector.add(m)
	}
	return id, true
}

func (m *pwMetrics) metric(id uint32) *pwMetric {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == 0 || int(id) > len(m.list) {
		return nil
	}
	return m.list[id-1]
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
	case mt.kind == pwCounter:
		mt.value.Store(int64(v))
	case mt.kind == pwGauge:
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

func (m *pwMetrics) unregister() {
	m.mu.Lock()
	reg := m.registered
	m.mu.Unlock()
	if reg {
		pwCollector.remove(m)
	}
}

// pwMetricsCollector exports the metrics of every live proxy-wasm filter.
type pwMetricsCollector struct {
	mu   sync.Mutex
	once sync.Once
	sets map[*pwMetrics]struct{}
}

var pwCollector = &pwMetricsCollector{sets: map[*pwMetrics]struct{}{}}

var (
	pwLabels  = []string{"pipeline", "filter", "name"}
	pwDescCtr = prometheus.NewDesc("sluice_wasm_guest_counter", "Counters proxy-wasm guests define (proxy_define_metric).", pwLabels, nil)
	pwDescGau = prometheus.NewDesc("sluice_wasm_guest_gauge", "Gauges proxy-wasm guests define (proxy_define_metric).", pwLabels, nil)
	pwDescHis = prometheus.NewDesc("sluice_wasm_guest_histogram", "Histograms proxy-wasm guests define (proxy_define_metric).", pwLabels, nil)
)

func (c *pwMetricsCollector) add(m *pwMetrics) {
	// Registered with the first guest metric, so /metrics lists no empty families before.
	c.once.Do(func() { metrics.Registry.MustRegister(c) })
	c.mu.Lock()
	c.sets[m] = struct{}{}
	c.mu.Unlock()
}

func (c *pwMetricsCollector) remove(m *pwMetrics) {
	c.mu.Lock()
	delete(c.sets, m)
	c.mu.Unlock()
}

func (c *pwMetricsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pwDescCtr
	ch <- pwDescGau
	ch <- pwDescHis
}

func (c *pwMetricsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sets := make([]*pwMetrics, 0, len(c.sets))
	for m := range c.sets {
		sets = append(sets, m)
	}
	c.mu.Unlock()
	// A reload's old and new filter of one slot both exist for a moment: export one of each
	// (pipeline, filter, name), the newest definition winning.
	seen := map[[3]string]bool{}
	for _, m := range sets {
		m.mu.Lock()
		list := append([]*pwMetric(nil), m.list...)
		m.mu.Unlock()
		for _, mt := range list {
			key := [3]string{m.pipeline, m.filter, string(rune('0'+mt.kind)) + mt.name}
			if seen[key] {
				continue
			}
			seen[key] = true
			switch mt.kind {
			case pwCounter:
				ch <- prometheus.MustNewConstMetric(pwDescCtr, prometheus.CounterValue, float64(mt.value.Load()), m.pipeline, m.filter, mt.name)
			case pwGauge:
				ch <- prometheus.MustNewConstMetric(pwDescGau, prometheus.GaugeValue, float64(mt.value.Load()), m.pipeline, m.filter, mt.name)
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
				ch <- prometheus.MustNewConstHistogram(pwDescHis, count, sum, buckets, m.pipeline, m.filter, mt.name)
			}
		}
	}
}
