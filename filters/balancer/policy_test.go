package balancer

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"
)

// testTargets makes n targets with the given weights (1 if nil), with fresh health states.
func testTargets(t testing.TB, upstream string, n int, weights []int) []*target {
	ts := make([]*target, n)
	for i := range ts {
		w := 1
		if weights != nil {
			w = weights[i]
		}
		addr := "10.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1) + ":80"
		ts[i] = &target{addr: addr, name: addr, weight: w, st: acquireState(upstream, addr)}
	}
	t.Cleanup(func() {
		for _, x := range ts {
			releaseState(x.st)
		}
	})
	return ts
}

func pickN(p picker, ts []*target, n int, key func(i int) (uint64, bool)) []int {
	counts := make([]int, len(ts))
	now := time.Now().UnixNano()
	for i := 0; i < n; i++ {
		var k uint64
		var has bool
		if key != nil {
			k, has = key(i)
		}
		j := p.pick(ts, k, has, nil, 0, now)
		if j >= 0 {
			counts[j]++
		}
	}
	return counts
}

func TestUniformPolicies(t *testing.T) {
	const picks = 100_000
	for _, policy := range []string{"round_robin", "random", "least_request", "p2c_ewma", "ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			ts := testTargets(t, t.Name(), 5, nil)
			counts := pickN(newPicker(policy, ts), ts, picks, nil)
			for i, c := range counts {
				// Every policy spreads requests without keys evenly: within 5% of the mean
				// (hashing policies pick random points; ring_hash points are not quite even).
				tol := 0.05
				if policy == "ring_hash" {
					tol = 0.10
				}
				if math.Abs(float64(c)-picks/5)/(picks/5) > tol {
					t.Errorf("target %d got %d picks of %d, want %d ± %.0f%%", i, c, picks, picks/5, tol*100)
				}
			}
		})
	}
}

func TestWeightedPolicies(t *testing.T) {
	const picks = 100_000
	weights := []int{1, 3, 6}
	for _, policy := range []string{"weighted_round_robin", "ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			ts := testTargets(t, t.Name(), 3, weights)
			counts := pickN(newPicker(policy, ts), ts, picks, nil)
			tol := 0.01 // weighted round robin is exact up to rounding
			if policy != "weighted_round_robin" {
				tol = 0.10
			}
			for i, c := range counts {
				want := float64(picks) * float64(weights[i]) / 10
				if math.Abs(float64(c)-want)/want > tol {
					t.Errorf("target %d (weight %d) got %d picks, want %.0f ± %.0f%%", i, weights[i], c, want, tol*100)
				}
			}
		})
	}
}

func TestWeightedRoundRobinIsSmooth(t *testing.T) {
	weights := []int{5, 1, 1, 3}
	total := 10
	ts := testTargets(t, t.Name(), len(weights), weights)
	p := newPicker("weighted_round_robin", ts)
	now := time.Now().UnixNano()
	seq := make([]int, 10*total)
	for i := range seq {
		seq[i] = p.pick(ts, 0, false, nil, 0, now)
	}
	// In every window of `total` consecutive picks, each target appears weight ± 1 times: no
	// target gets its whole share in one burst.
	for start := 0; start+total <= len(seq); start++ {
		counts := make([]int, len(weights))
		for _, j := range seq[start : start+total] {
			counts[j]++
		}
		for i, c := range counts {
			if c < weights[i]-1 || c > weights[i]+1 {
				t.Fatalf("window at %d: target %d appears %d times, want %d ± 1 (sequence %v)", start, i, c, weights[i], seq)
			}
		}
	}
}

func TestPoliciesSkipUnavailableAndTried(t *testing.T) {
	now := time.Now().UnixNano()
	for _, policy := range Policies {
		t.Run(policy, func(t *testing.T) {
			ts := testTargets(t, t.Name(), 4, []int{1, 2, 3, 4})
			p := newPicker(policy, ts)
			ts[0].st.healthy.Store(false)
			ts[1].st.ejectedUntil.Store(now + int64(time.Hour))
			for i := 0; i < 1000; i++ {
				j := p.pick(ts, uint64(i)*0x9e3779b97f4a7c15, true, []int{2}, 0, now)
				if j != 3 {
					t.Fatalf("pick %d = %d, want 3 (0 unhealthy, 1 ejected, 2 already tried)", i, j)
				}
			}
			ts[3].st.healthy.Store(false)
			if j := p.pick(ts, 1, true, []int{2}, 0, now); j != -1 {
				t.Fatalf("pick with nothing available = %d, want -1", j)
			}
		})
	}
}

func TestLeastRequestAvoidsBusyTarget(t *testing.T) {
	ts := testTargets(t, t.Name(), 3, nil)
	ts[0].st.inflight.Store(50)
	counts := pickN(newPicker("least_request", ts), ts, 30_000, nil)
	// Target 0 only wins when both choices... never: it is always the busier of any pair.
	if counts[0] != 0 {
		t.Errorf("busy target got %d of 30000 picks, want 0 (%v)", counts[0], counts)
	}
}

func TestP2CEWMAAvoidsSlowTarget(t *testing.T) {
	ts := testTargets(t, t.Name(), 3, nil)
	now := time.Now().UnixNano()
	ts[0].st.observeLatency(50*time.Millisecond, now)
	ts[1].st.observeLatency(time.Millisecond, now)
	ts[2].st.observeLatency(time.Millisecond, now)
	counts := pickN(newPicker("p2c_ewma", ts), ts, 30_000, nil)
	if counts[0] != 0 {
		t.Errorf("slow target got %d of 30000 picks, want 0 while idle targets are 50x faster (%v)", counts[0], counts)
	}
	// With enough requests in flight on the fast ones, the slow one becomes the better choice.
	ts[1].st.inflight.Store(100)
	ts[2].st.inflight.Store(100)
	counts = pickN(newPicker("p2c_ewma", ts), ts, 30_000, nil)
	if counts[0] == 0 {
		t.Errorf("slow but idle target never picked while the others have 100 in flight (%v)", counts)
	}
}

func TestPeakEWMA(t *testing.T) {
	var s targetState
	now := time.Now().UnixNano()
	s.observeLatency(10*time.Millisecond, now)
	s.observeLatency(100*time.Millisecond, now+1)
	if got := s.latency(); got != float64(100*time.Millisecond) {
		t.Errorf("a peak replaces the average at once: %v", time.Duration(got))
	}
	s.observeLatency(10*time.Millisecond, now+int64(ewmaDecay))
	want := 100e6*math.Exp(-1) + 10e6*(1-math.Exp(-1))
	if got := s.latency(); math.Abs(got-want) > 1e3 {
		t.Errorf("after one decay time: %v, want %v", time.Duration(got), time.Duration(want))
	}
	if got := s.decayedLatency(now + 3*int64(ewmaDecay)); got >= want*0.2 {
		t.Errorf("without samples the latency decays: %v", time.Duration(got))
	}
}

// TestDecay checks the EWMA's e^-x against math.Exp on both sides of its series cut-off.
func TestDecay(t *testing.T) {
	for _, x := range []float64{0, 1e-9, 1e-4, 1.0 / 128, 1.0/64 - 1e-12, 1.0 / 64, 0.5, 1, 30} {
		if got, want := decay(x), math.Exp(-x); math.Abs(got-want) > 1e-6 {
			t.Errorf("decay(%g) = %.12f, want %.12f", x, got, want)
		}
	}
}

// TestConsistentHashing checks that adding an 11th target to 10 moves about 1/11 of the keys,
// all of them to the new target.
func TestConsistentHashing(t *testing.T) {
	const keys = 20_000
	for _, policy := range []string{"ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			all := testTargets(t, t.Name(), 11, nil)
			before, after := all[:10], all
			pb, pa := newPicker(policy, before), newPicker(policy, after)
			now := time.Now().UnixNano()
			moved, elsewhere := 0, 0
			for k := 0; k < keys; k++ {
				h := hashString("user-" + strconv.Itoa(k))
				a := pb.pick(before, h, true, nil, 0, now)
				b := pa.pick(after, h, true, nil, 0, now)
				if a != b {
					moved++
					if b != 10 {
						elsewhere++
					}
				}
			}
			// A ring moves keys only to the new target; Maglev trades a little disruption
			// (keys between old targets) for its O(1) even table.
			if max := map[string]float64{"ring_hash": 0, "maglev": 0.02}[policy]; float64(elsewhere)/keys > max {
				t.Errorf("%d keys moved between old targets, want at most %.0f%%", elsewhere, max*100)
			}
			frac := float64(moved) / keys
			if frac < 0.5/11 || frac > 1.6/11 {
				t.Errorf("%.3f of keys moved, want about 1/11 = %.3f", frac, 1.0/11)
			}
			t.Logf("%s: %.2f%% of keys moved on adding the 11th target (ideal %.2f%%)", policy, frac*100, 100.0/11)
		})
	}
}

func TestBoundedLoad(t *testing.T) {
	for _, policy := range []string{"ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			ts := testTargets(t, t.Name(), 4, nil)
			p := newPicker(policy, ts)
			now := time.Now().UnixNano()
			h := hashString("hot-key")
			home := p.pick(ts, h, true, nil, 0, now)
			// The hot key's home target carries 20 of the upstream's 24 requests in flight: far
			// above 1.25 × the average, so the key spills over to another target.
			ts[home].st.inflight.Store(20)
			for i, x := range ts {
				if i != home {
					x.st.inflight.Store(1)
				}
			}
			got := p.pick(ts, h, true, nil, 24, now)
			if got == home || got < 0 {
				t.Errorf("overloaded home target %d still picked (%d)", home, got)
			}
			if limit := capacity(24, 4); limit >= 20 {
				t.Errorf("capacity %d does not bound the hot target", limit)
			}
			ts[home].st.inflight.Store(0)
			if got := p.pick(ts, h, true, nil, 3, now); got != home {
				t.Errorf("after the load dropped the key went to %d, want its home %d", got, home)
			}
		})
	}
}

func TestSelectAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, n := range []int{3, 100, 1000} {
		for _, policy := range Policies {
			ts := testTargets(t, fmt.Sprintf("%s-%d-alloc", policy, n), n, nil)
			p := newPicker(policy, ts)
			now := time.Now().UnixNano()
			tried := []int{0}
			k := uint64(0)
			allocs := testing.AllocsPerRun(1000, func() {
				k += 0x9e3779b97f4a7c15
				p.pick(ts, k, true, tried, 10, now)
			})
			if allocs != 0 {
				t.Errorf("%s at %d targets allocates %v per pick", policy, n, allocs)
			}
		}
	}
}

func BenchmarkSelect(b *testing.B) {
	for _, policy := range Policies {
		for _, n := range []int{3, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				ts := testTargets(b, fmt.Sprintf("%s-%d-bench", policy, n), n, nil)
				p := newPicker(policy, ts)
				now := time.Now().UnixNano()
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					k := uint64(1)
					for pb.Next() {
						k += 0x9e3779b97f4a7c15
						p.pick(ts, k, true, nil, 10, now)
					}
				})
			})
		}
	}
}

func TestThousandTargets(t *testing.T) {
	weights := make([]int, 1000)
	for i := range weights {
		weights[i] = 1 + i%5
	}
	for _, policy := range Policies {
		ts := testTargets(t, "thousand-"+policy, 1000, weights)
		start := time.Now()
		p := newPicker(policy, ts)
		built := time.Since(start)
		counts := pickN(p, ts, 200_000, func(i int) (uint64, bool) { return mix64(uint64(i)), true })
		missing := 0
		for _, c := range counts {
			if c == 0 {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of 1000 targets never picked in 200k picks", policy, missing)
		}
		if built > 3*time.Second {
			t.Errorf("%s: building over 1000 targets took %v", policy, built)
		}
		t.Logf("%-21s built over 1000 targets in %v", policy, built.Round(time.Millisecond))
	}
}
