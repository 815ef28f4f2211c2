package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// LazyCounter is one series of a counter family, made on its first increment: a configuration
// gets no always-zero series for outcomes that never happened (a failure reason, a retry
// reason), while the increment stays an atomic add once the series exists.
type LazyCounter struct {
	vec *prometheus.CounterVec
	lvs []string
	c   atomic.Pointer[prometheus.Counter]
}

// NewLazyCounter returns the series of vec with label values lvs, not yet made.
func NewLazyCounter(vec *prometheus.CounterVec, lvs ...string) *LazyCounter {
	return &LazyCounter{vec: vec, lvs: lvs}
}

// Inc adds one: the series' Inc, one atomic add, rather than Add(1)'s test of the float.
func (l *LazyCounter) Inc() {
	c := l.c.Load()
	if c == nil {
		c = l.make()
	}
	(*c).Inc()
}

// Add adds v.
func (l *LazyCounter) Add(v float64) {
	c := l.c.Load()
	if c == nil {
		c = l.make()
	}
	(*c).Add(v)
}

// make gets the series from the family on its first use. Concurrent first calls get the same
// series: storing either is fine.
func (l *LazyCounter) make() *prometheus.Counter {
	s := l.vec.WithLabelValues(l.lvs...)
	l.c.Store(&s)
	return &s
}
