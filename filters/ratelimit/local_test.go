package ratelimit

import (
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"
	"time"
)

const (
	ms  = int64(time.Millisecond)
	sec = int64(time.Second)
)

// newTestStore makes a store that admits 1 + extra requests back to back (as testConfig).
func newTestStore(limit int, period time.Duration, extra int) *localStore {
	return newLocalStore(newGCRA(limit, period, extra+1, time.Nanosecond), DefaultMaxKeys)
}

// maxInWindow is the largest number of times in any half-open window [s, s+w).
func maxInWindow(times []int64, w int64) int {
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	best, j := 0, 0
	for i := range times {
		for times[i]-times[j] >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func TestExactCountsPerWindow(t *testing.T) {
	tests := []struct {
		name          string
		limit, burst  int
		period        time.Duration
		gap           int64 // between arrivals
		duration      int64
		wantMaxWindow int
		wantTotal     int
	}{
		// Arrivals every 1ms against 10/s: admissions at 0, 100ms, …: exactly 10 per window.
		{"10/s, 1ms arrivals", 10, 0, time.Second, 1 * ms, 5 * sec, 10, 50},
		// 100/min with arrivals every 50ms (T = 600ms): one admitted in 12.
		{"100/min", 100, 0, time.Minute, 50 * ms, 3 * 60 * sec, 100, 300},
		// 7 per second does not divide evenly: T rounds up, still never 8 in a second.
		{"7/s", 7, 0, time.Second, 1 * ms, 10 * sec, 7, 70},
		// burst 5 on 10/s: the first window gets 15, later ones at most 15, total 10/s + 5.
		{"10/s burst 5", 10, 5, time.Second, 1 * ms, 5 * sec, 15, 55},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(tt.limit, tt.period, tt.burst)
			var admitted []int64
			for now := int64(0); now < tt.duration; now += tt.gap {
				if ok, _ := s.take(1, now); ok {
					admitted = append(admitted, now)
				}
			}
			if got := maxInWindow(admitted, int64(tt.period)); got != tt.wantMaxWindow {
				t.Errorf("busiest window of %v admitted %d, want %d", tt.period, got, tt.wantMaxWindow)
			}
			if len(admitted) != tt.wantTotal {
				t.Errorf("admitted %d in total, want %d", len(admitted), tt.wantTotal)
			}
		})
	}
}

// TestLimitPlusOneRefused: requests spaced exactly T apart fill a window with limit, and the next
// one inside the same window, however late in it, is refused.
func TestLimitPlusOneRefused(t *testing.T) {
	s := newTestStore(5, 5*time.Second, 0) // T = 1s
	for i := range int64(5) {
		if ok, _ := s.take(1, i*sec); !ok {
			t.Fatalf("request %d at %ds refused, want admitted", i+1, i)
		}
	}
	// [0, 5s) already holds 5: a 6th at 4.999999999s is refused.
	if ok, ahead := s.take(1, 5*sec-1); ok {
		t.Fatal("6th request inside the first 5s window admitted")
	} else if ahead != 1 {
		t.Errorf("TAT - now = %dns, want 1ns", ahead)
	}
	if ok, _ := s.take(1, 5*sec); !ok {
		t.Error("request at 5s (window [1s, 6s) holds 4) refused")
	}
}

// TestRandomArrivalsNeverExceed checks the window guarantee under irregular traffic, and that
// the limiter is not needlessly strict: after any refusal, the wait it announced is exact.
func TestRandomArrivalsNeverExceed(t *testing.T) {
	for _, burst := range []int{0, 3} {
		rng := rand.New(rand.NewPCG(1, uint64(burst)))
		const limit = 20
		period := 2 * time.Second
		s := newTestStore(limit, period, burst)
		var admitted []int64
		now := int64(0)
		for range 20000 {
			now += rng.Int64N(40 * ms)
			ok, ahead := s.take(7, now)
			if ok {
				admitted = append(admitted, now)
				continue
			}
			// The key conforms again exactly at TAT - tau.
			wait := ahead - s.g.tolerance
			if ok, _ := s.take(7, now+wait-1); ok {
				t.Fatalf("burst %d: admitted 1ns before the announced wait", burst)
			}
		}
		if got := maxInWindow(admitted, int64(period)); got > limit+burst {
			t.Errorf("burst %d: a %v window admitted %d, want at most %d", burst, period, got, limit+burst)
		}
	}
}

func TestBurstAndRefill(t *testing.T) {
	s := newTestStore(10, time.Second, 4) // T = 100ms, tau = 400ms
	for i := range 5 {
		if ok, _ := s.take(1, 0); !ok {
			t.Fatalf("burst request %d refused", i+1)
		}
	}
	ok, ahead := s.take(1, 0)
	if ok {
		t.Fatal("request burst+2 admitted")
	}
	if got := s.g.retryAfter(ahead); got != 1 {
		t.Errorf("Retry-After = %d, want 1", got)
	}
	// Refill: one per T.
	if ok, _ := s.take(1, 100*ms-1); ok {
		t.Error("admitted before one interval passed")
	}
	if ok, _ := s.take(1, 100*ms); !ok {
		t.Error("refused after one interval")
	}
	// After (burst+1)*T of idleness the whole burst is back.
	idle := 200*ms + 500*ms
	for i := range 5 {
		if ok, _ := s.take(1, idle); !ok {
			t.Fatalf("after idleness, burst request %d refused", i+1)
		}
	}
	if ok, _ := s.take(1, idle); ok {
		t.Error("after idleness, request burst+2 admitted")
	}
}

func TestKeyIsolation(t *testing.T) {
	s := newTestStore(1, time.Minute, 0)
	if ok, _ := s.take(1, 0); !ok {
		t.Fatal("key 1 refused")
	}
	if ok, _ := s.take(1, sec); ok {
		t.Fatal("key 1 admitted twice in a minute")
	}
	for k := uint64(2); k < 1000; k++ {
		// Keys sharing a shard (same top bits) and keys in other shards alike.
		if ok, _ := s.take(k<<40|1, sec); !ok {
			t.Fatalf("key %d refused: state leaked between keys", k)
		}
	}
}

// TestFields: r is what a client may send at once, t when that gets better (issue 25, item 17:
// r used to count what fitted in the next window however spaced, so a key refused its next
// request while its RateLimit said r=49).
func TestFields(t *testing.T) {
	g := newGCRA(100, time.Minute, 1, time.Nanosecond) // T = 600ms, strictly spaced
	if got := g.windowSeconds(); got != 60 {
		t.Errorf("window = %ds, want 60", got)
	}
	// After one request, TAT = now + 600ms: the next request, sent now, is refused.
	if r, tt := g.fields(600 * ms); r != 0 || tt != 1 {
		t.Errorf("burst 1 after one request: r=%d t=%d, want r=0 t=1", r, tt)
	}
	gb := newGCRA(100, time.Minute, 21, time.Nanosecond) // tau = 12s
	if r, tt := gb.fields(600 * ms); r != 20 || tt != 1 {
		t.Errorf("burst 21 after one request: r=%d t=%d, want r=20 t=1", r, tt)
	}
	if r, tt := gb.fields(12*sec + 600*ms); r != 0 || tt != 1 {
		t.Errorf("burst 21 spent: r=%d t=%d, want r=0 t=1", r, tt)
	}
	if r, tt := gb.fields(6 * sec); r != 11 || tt != 6 {
		t.Errorf("burst 21, TAT 6s ahead: r=%d t=%d, want r=11 t=6", r, tt)
	}
	// The default burst (= limit) of 50 per second: r counts down 49, 48, … 0 over 50 requests
	// sent at once, each r exactly the number of further requests admitted.
	d := newTestStore(50, time.Second, 49)
	gd := newGCRA(50, time.Second, 50, time.Nanosecond)
	var rs []int64
	for range 51 {
		ok, ahead := d.take(1, 0)
		if !ok {
			break
		}
		r, _ := gd.fields(ahead)
		rs = append(rs, r)
	}
	if len(rs) != 50 {
		t.Fatalf("%d of 51 back-to-back requests admitted, want 50", len(rs))
	}
	for i, r := range rs {
		if r != int64(49-i) {
			t.Fatalf("request %d: r=%d, want %d", i+1, r, 49-i)
		}
	}
	// Sub-second and fractional periods advertise whole seconds, rounded up.
	g15 := newGCRA(5, 1500*time.Millisecond, 0, time.Microsecond)
	if got := g15.windowSeconds(); got != 2 {
		t.Errorf("window of 1.5s = %ds, want 2", got)
	}
	if got := newGCRA(7, time.Minute, 0, time.Microsecond).interval; got != 8571429 {
		t.Errorf("T for 7/min = %dµs, want 8571429 (rounded up)", got)
	}
}

func TestIdleKeysExpire(t *testing.T) {
	s := newTestStore(10, time.Second, 0) // keys idle 100ms after their last request
	for k := range uint64(10000) {
		s.take(k*0x9E3779B97F4A7C15, 0)
	}
	if n := s.len(); n != 10000 {
		t.Fatalf("held %d keys, want 10000", n)
	}
	// Later, new keys arrive in every shard: each shard sweeps the idle ones.
	later := 10 * sec
	for k := range uint64(10000) {
		s.take(k*0x9E3779B97F4A7C15+1, later)
	}
	if n := s.len(); n != 10000 {
		t.Errorf("after the sweep: %d keys, want only the 10000 new ones", n)
	}
}

// TestMemoryBoundedUnderFlood sends 1M distinct keys while none expires (a frozen clock and a
// 1h period): the store keeps at most its bound, and the heap stays small.
func TestMemoryBoundedUnderFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("1M keys")
	}
	const maxKeys = 1 << 16
	s := newLocalStore(newGCRA(1, time.Hour, 0, time.Nanosecond), maxKeys)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for k := range uint64(1_000_000) {
		h := (k + 1) * 0x9E3779B97F4A7C15 // spread over the shards like a hash
		if ok, _ := s.take(h, 1); !ok {
			t.Fatalf("new key %d refused", k)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := s.len(); n > maxKeys {
		t.Errorf("store holds %d keys, bound is %d", n, maxKeys)
	}
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if grew > 8<<20 {
		t.Errorf("heap grew by %d bytes for a %d-key bound, want under 8MiB", grew, maxKeys)
	}
	t.Logf("1M distinct keys: %d held, heap +%d KiB", s.len(), grew>>10)
	// The most recent keys are still limited: eviction drops the oldest TATs first.
	last := uint64(1_000_000)
	if ok, _ := s.take(last*0x9E3779B97F4A7C15, 1); ok {
		t.Error("the last key admitted twice: the freshest state was evicted")
	}
}

func BenchmarkLocalDecision(b *testing.B) {
	s := newTestStore(1<<30, time.Second, 1<<20)
	b.ReportAllocs()
	now := int64(0)
	loopCPU(b, func() {
		now++
		s.take(uint64(now&1023)*0x9E3779B97F4A7C15, now)
	})
}

func BenchmarkLocalDecisionParallel(b *testing.B) {
	s := newTestStore(1<<30, time.Second, 1<<20)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := rand.Uint64()
		now := int64(0)
		for pb.Next() {
			now++
			k++
			s.take((k&1023)*0x9E3779B97F4A7C15, now)
		}
	})
}

// TestConcurrentExact: goroutines racing on one key, and on keys of one shard, with a frozen
// clock: exactly burst+1 admissions per key, however the decisions interleave.
func TestConcurrentExact(t *testing.T) {
	s := newTestStore(10, time.Second, 99)
	const goroutines, perG = 8, 200
	counts := make(chan [2]int, goroutines)
	for range goroutines {
		go func() {
			var n [2]int
			for i := range perG {
				key := uint64(i%2) << 1 // keys 0 and 2 share shard 0
				if ok, _ := s.take(key, 5*sec); ok {
					n[i%2]++
				}
			}
			counts <- n
		}()
	}
	var total [2]int
	for range goroutines {
		n := <-counts
		total[0] += n[0]
		total[1] += n[1]
	}
	if total != [2]int{100, 100} {
		t.Errorf("admitted %v, want exactly 100 per key", total)
	}
}

// TestShardRebuild: a shard that grew large and emptied is rebuilt smaller, keeping the state of
// the keys it still holds, and freed slots are reused.
func TestShardRebuild(t *testing.T) {
	s := newTestStore(1, time.Second, 0) // keys idle 1s after their request
	sh := &s.shards[0]
	for k := range uint64(3000) { // small hashes all land in shard 0
		s.take(k+1, 0)
	}
	s.take(5000, 500*ms) // a key that stays busy until 1.5s
	if sh.peak != 3001 || len(sh.tats) != 3001 {
		t.Fatalf("peak %d, %d slots; want 3001", sh.peak, len(sh.tats))
	}
	s.take(6000, 1200*ms) // a new key: the sweep drops the 3000 idle ones and rebuilds
	if n := len(sh.index); n != 2 || len(sh.tats) > 2 || sh.peak != 2 {
		t.Fatalf("after the sweep: %d keys, %d slots, peak %d; want 2, 2, 2", n, len(sh.tats), sh.peak)
	}
	if ok, _ := s.take(5000, 1300*ms); ok {
		t.Error("key 5000 lost its state in the rebuild")
	}
	if ok, _ := s.take(5000, 1500*ms); !ok {
		t.Error("key 5000 refused once idle")
	}
	// Eviction frees a slot that the next key reuses.
	s2 := newLocalStore(newGCRA(1, time.Hour, 0, time.Nanosecond), numShards) // one key per shard
	s2.take(1, 0)
	s2.take(2, 0) // evicts key 1
	if n := len(s2.shards[0].tats); n != 1 {
		t.Errorf("%d slots after an eviction, want the freed one reused", n)
	}
	if ok, _ := s2.take(2, 1); ok {
		t.Error("key 2 admitted twice within the hour")
	}
}
