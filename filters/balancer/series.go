package balancer

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// The upstreams serving now (a reload's new ones and, while they drain, the old ones). They
// feed the target health gauge, and decide when a target's or an upstream's series go: when
// the last upstream of that name holding the target lets it go (a reload or a DNS refresh
// removed it), its series are deleted, so /metrics does not keep reporting a target that no
// longer exists.
var live = struct {
	sync.Mutex
	seq  uint64
	byID map[*Upstream]uint64 // registration order: the newest wins a duplicate in the gauge
}{byID: map[*Upstream]uint64{}}

func registerLive(u *Upstream) {
	live.Lock()
	live.seq++
	live.byID[u] = live.seq
	live.Unlock()
}

// unregisterLive removes u and deletes its upstream-level series when no upstream of its name
// serves any more.
func unregisterLive(u *Upstream) {
	live.Lock()
	defer live.Unlock()
	delete(live.byID, u)
	for o := range live.byID {
		if o.name == u.name {
			return
		}
	}
	l := prometheus.Labels{"upstream": u.name}
	for _, v := range []*prometheus.CounterVec{mRequests, mFailures, mEjections, mRetries, mBudgetExhausted, mNoTarget, mCircuitOpen} {
		v.DeletePartialMatch(l)
	}
	mLatency.DeletePartialMatch(l)
}

// targetGone deletes the series of target addr of u's name unless another live upstream of
// that name still has it.
func targetGone(u *Upstream, addr string) {
	live.Lock()
	defer live.Unlock()
	for o := range live.byID {
		if o == u || o.name != u.name {
			continue
		}
		if s := o.set.Load(); s != nil {
			for _, t := range s.targets {
				if t.addr == addr {
					return
				}
			}
		}
	}
	l := prometheus.Labels{"upstream": u.name, "target": addr}
	for _, v := range []*prometheus.CounterVec{mRequests, mFailures, mEjections} {
		v.DeletePartialMatch(l)
	}
	mLatency.DeletePartialMatch(l)
}

// healthGauge exposes sluice_upstream_target_healthy from the live upstreams' target states,
// read when scraped (nothing is recorded per request).
type healthGauge struct{ desc *prometheus.Desc }

var targetHealthy = &healthGauge{desc: prometheus.NewDesc("sluice_upstream_target_healthy",
	"1 when the target can take requests (its active health check passes and outlier detection has not ejected it), else 0; by upstream and target.",
	[]string{"upstream", "target"}, nil)}

func init() { metrics.Registry.MustRegister(targetHealthy) }

func (g *healthGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *healthGauge) Collect(ch chan<- prometheus.Metric) {
	live.Lock()
	ups := make([]*Upstream, 0, len(live.byID))
	for u := range live.byID {
		ups = append(ups, u)
	}
	seq := make(map[*Upstream]uint64, len(ups))
	for u, s := range live.byID {
		seq[u] = s
	}
	live.Unlock()
	type key struct{ upstream, target string }
	newest := map[key]uint64{}
	vals := map[key]float64{}
	now := time.Now().UnixNano()
	for _, u := range ups {
		s := u.set.Load()
		if s == nil {
			continue
		}
		for _, t := range s.targets {
			k := key{u.name, t.addr}
			if seq[u] < newest[k] {
				continue
			}
			newest[k] = seq[u]
			v := 0.0
			if t.st.available(now) {
				v = 1
			}
			vals[k] = v
		}
	}
	for k, v := range vals {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, k.upstream, k.target)
	}
}
