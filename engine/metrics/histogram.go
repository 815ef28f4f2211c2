package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HistogramVec is a family of latency histograms, exposed like a Prometheus histogram with
// labels. It exists for the request path: client_golang's Observe makes four atomic
// read-modify-writes (count and hot index, bucket, a compare-and-swap loop for the float sum,
// count again) so that a scrape sees sum, count and buckets from the same instant; a
// Histogram here makes two (its bucket, an integer sum of nanoseconds) and derives the count
// from the buckets when scraped. A scrape that races with requests may then show a sum a few
// observations ahead of or behind the buckets, which rate() over a scrape interval does not
// notice.
type HistogramVec struct {
	desc   *prometheus.Desc
	names  []string        // the label names
	labels int             // how many label values a child has
	bounds []time.Duration // upper bounds, ascending; the last bucket (+Inf) is implicit
	upper  []float64       // the same bounds in seconds, as exposed

	mu       sync.Mutex
	children map[string]*Histogram
}

// NewHistogramVec registers on Registry a histogram family named name with the given bucket
// upper bounds in seconds (ascending) and label names.
func NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	v := &HistogramVec{
		desc:     prometheus.NewDesc(name, help, labels, nil),
		names:    labels,
		labels:   len(labels),
		upper:    buckets,
		children: map[string]*Histogram{},
	}
	for i, b := range buckets {
		if i > 0 && b <= buckets[i-1] {
			panic(fmt.Sprintf("metrics: %s: bucket bounds must increase (%v after %v)", name, b, buckets[i-1]))
		}
		v.bounds = append(v.bounds, time.Duration(math.Round(b*float64(time.Second))))
	}
	Registry.MustRegister(v)
	return v
}

// WithLabelValues returns the histogram for these label values (in the order of the family's
// label names), creating it on first use. Resolve it once, off the request path.
func (v *HistogramVec) WithLabelValues(lvs ...string) *Histogram {
	if len(lvs) != v.labels {
		// As client_golang does: a wrong count is a programming error, better found here than
		// by a scrape.
		panic(fmt.Sprintf("metrics: %d label values for %d labels", len(lvs), v.labels))
	}
	key := strings.Join(lvs, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	h, ok := v.children[key]
	if !ok {
		h = &Histogram{bounds: v.bounds, counts: make([]atomic.Uint64, len(v.bounds)+1), labels: slices.Clone(lvs)}
		v.children[key] = h
	}
	return h
}

// DeletePartialMatch removes every child whose labels include all of match (as
// prometheus.MetricVec's does) and returns how many it removed. A deleted child that is still
// observed into is no longer exposed.
func (v *HistogramVec) DeletePartialMatch(match prometheus.Labels) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for key, h := range v.children {
		if v.matches(h.labels, match) {
			delete(v.children, key)
			n++
		}
	}
	return n
}

func (v *HistogramVec) matches(lvs []string, match prometheus.Labels) bool {
	for name, want := range match {
		i := slices.Index(v.names, name)
		if i < 0 || lvs[i] != want {
			return false
		}
	}
	return true
}

// Describe implements prometheus.Collector.
func (v *HistogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector: each child as a histogram with cumulative buckets.
func (v *HistogramVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, h := range v.children {
		count, sum, buckets := h.snapshot(v.upper)
		ch <- prometheus.MustNewConstHistogram(v.desc, count, sum, buckets, h.labels...)
	}
}

// Histogram counts durations into fixed buckets; safe for concurrent use, allocation-free.
type Histogram struct {
	// What Observe touches first and together: a single line of h, unless h straddles two.
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64    // nanoseconds
	bounds []time.Duration
	labels []string
}

// Observe records d. A negative d (a clock step) counts as zero.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	// Linear: request latencies fall in the first few buckets, where a linear scan stops
	// sooner than a binary search would.
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Count returns the number of observations so far.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// snapshot returns the sample count, the sum in seconds and the cumulative bucket counts keyed
// by their upper bounds (in seconds).
func (h *Histogram) snapshot(upper []float64) (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(upper))
	for i, ub := range upper {
		count += h.counts[i].Load()
		buckets[ub] = count
	}
	count += h.counts[len(upper)].Load()
	return count, time.Duration(h.sum.Load()).Seconds(), buckets
}
