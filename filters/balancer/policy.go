package balancer

import (
	"cmp"
	"container/heap"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
)

// picker is a load-balancing policy over a fixed list of targets. pick returns the index of the
// target for this attempt, or -1 when none is available. It must not allocate: it runs for every
// request. key is the request's hash (hash policies only; hasKey false when the request has
// none), tried lists the indices of targets already tried by this request, load is the number of
// requests in flight on the whole upstream (for bounded-load hashing).
type picker interface {
	pick(ts []*target, key uint64, hasKey bool, tried []int, load int64, now int64) int
}

func newPicker(policy string, ts []*target) picker {
	switch policy {
	case "weighted_round_robin":
		return newWeightedRR(ts)
	case "least_request":
		return &p2c{}
	case "p2c_ewma":
		return &p2c{ewma: true}
	case "ring_hash":
		return newRing(ts)
	case "maglev":
		return newMaglev(ts)
	case "random":
		return randomPicker{}
	}
	return &roundRobin{}
}

// usable reports whether target i can take this attempt.
func usable(ts []*target, i int, tried []int, now int64) bool {
	for _, j := range tried {
		if j == i {
			return false
		}
	}
	return ts[i].st.available(now)
}

// scan returns the first usable target from start on, wrapping around, or -1.
func scan(ts []*target, start int, tried []int, now int64) int {
	n := len(ts)
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		if usable(ts, i, tried, now) {
			return i
		}
	}
	return -1
}

// roundRobin takes targets in turn, skipping unavailable ones.
type roundRobin struct{ next atomic.Uint64 }

func (p *roundRobin) pick(ts []*target, _ uint64, _ bool, tried []int, _ int64, now int64) int {
	if len(ts) == 0 {
		return -1
	}
	start := int((p.next.Add(1) - 1) % uint64(len(ts)))
	return scan(ts, start, tried, now)
}

// randomPicker picks uniformly among available targets.
type randomPicker struct{}

func (randomPicker) pick(ts []*target, _ uint64, _ bool, tried []int, _ int64, now int64) int {
	if len(ts) == 0 {
		return -1
	}
	return scan(ts, rand.IntN(len(ts)), tried, now)
}

// weightedRR is smooth weighted round robin: a precomputed schedule in which each target appears
// weight times, evenly spread (earliest deadline first on the virtual times (k+½)/weight, i.e.
// stride scheduling): a target with weight w out of a total W comes up once every W/w picks, so
// there are no bursts. A pick is one atomic increment: O(1) at any number of targets.
type weightedRR struct {
	sched []uint32
	next  atomic.Uint64
}

// maxSchedule bounds the schedule's length; larger weight sums are scaled down.
const maxSchedule = 1 << 20

func newWeightedRR(ts []*target) *weightedRR {
	w := make([]int, len(ts))
	total := 0
	g := 0
	for i, t := range ts {
		w[i] = max(t.weight, 1)
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxSchedule {
		total = 0
		for i := range w {
			w[i] = max(1, int(math.Round(float64(w[i])*maxSchedule/float64(total+1))))
			total += w[i]
		}
	}
	p := &weightedRR{sched: make([]uint32, 0, total)}
	h := make(edfHeap, len(w))
	for i := range w {
		h[i] = edfEntry{at: 0.5 / float64(w[i]), step: 1 / float64(w[i]), idx: i}
	}
	heap.Init(&h)
	for len(p.sched) < total {
		e := &h[0]
		p.sched = append(p.sched, uint32(e.idx))
		e.at += e.step
		heap.Fix(&h, 0)
	}
	return p
}

func (p *weightedRR) pick(ts []*target, _ uint64, _ bool, tried []int, _ int64, now int64) int {
	if len(ts) == 0 || len(p.sched) == 0 {
		return -1
	}
	n := uint64(len(p.sched))
	// Unavailable targets are skipped by moving on in the schedule, which keeps the others'
	// proportions; after a few misses, fall back to a scan.
	for k := 0; k < 8; k++ {
		i := int(p.sched[(p.next.Add(1)-1)%n])
		if i < len(ts) && usable(ts, i, tried, now) {
			return i
		}
	}
	return scan(ts, rand.IntN(len(ts)), tried, now)
}

type edfEntry struct {
	at, step float64
	idx      int
}

type edfHeap []edfEntry

func (h edfHeap) Len() int { return len(h) }
func (h edfHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].idx < h[j].idx
}
func (h edfHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *edfHeap) Push(x any)   { *h = append(*h, x.(edfEntry)) }
func (h *edfHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// p2c is the power of two choices: two random targets, the less loaded wins. Load is the number
// of requests in flight (least_request), or with ewma the peak-EWMA latency × (in-flight + 1)
// (p2c_ewma, as in Finagle, Linkerd and Envoy), which steers traffic away from slow targets
// before they pile up requests.
type p2c struct{ ewma bool }

// unknownLatency is the latency assumed for a target with no sample yet (1 ms): low, so new
// targets are tried, but not zero, so in-flight counts still matter.
const unknownLatency = 1e6

func (p *p2c) cost(t *target, now int64) float64 {
	inflight := float64(t.st.inflight.Load())
	if !p.ewma {
		return inflight
	}
	lat := t.st.decayedLatency(now)
	if lat <= 0 {
		lat = unknownLatency
	}
	return lat * (inflight + 1)
}

func (p *p2c) pick(ts []*target, _ uint64, _ bool, tried []int, _ int64, now int64) int {
	n := len(ts)
	switch n {
	case 0:
		return -1
	case 1:
		return scan(ts, 0, tried, now)
	}
	a := rand.IntN(n)
	b := rand.IntN(n - 1)
	if b >= a {
		b++
	}
	ua, ub := usable(ts, a, tried, now), usable(ts, b, tried, now)
	switch {
	case ua && ub:
		ca, cb := p.cost(ts[a], now), p.cost(ts[b], now)
		if cb < ca || (cb == ca && rand.IntN(2) == 0) {
			return b
		}
		return a
	case ua:
		return a
	case ub:
		return b
	}
	return scan(ts, rand.IntN(n), tried, now)
}

// boundedLoadFactor is the c of "consistent hashing with bounded loads" (Mirrokni et al.): no
// target takes more than c × the average in-flight load, so one hot key cannot overload a target;
// its overflow walks on to the next targets of the ring.
const boundedLoadFactor = 1.25

func capacity(load int64, n int) int64 {
	return int64(math.Ceil(boundedLoadFactor * float64(load+1) / float64(n)))
}

// ring is consistent hashing on a ring of virtual nodes (ring_hash): each target owns
// ringPointsPerWeight × weight points; a key goes to the owner of the first point at or after its
// hash. Adding a target moves about 1/n of the keys.
type ring struct {
	hashes []uint64
	owners []uint32
	// index[b] is the first point whose hash's top bits (hash >> shift) are at least b, with as
	// many buckets as points (rounded up to a power of two): a key's point is searched for only
	// within its bucket, about one point, so a pick costs the same at 3 targets and at 1,000,
	// where a binary search over the whole ring (4 MiB of points) missed the cache at every step.
	index []uint32
	shift uint
}

const (
	ringPointsPerWeight = 512
	maxRingPoints       = 1 << 19
)

func newRing(ts []*target) *ring {
	weights := 0
	for _, t := range ts {
		weights += max(t.weight, 1)
	}
	// The points per target do not depend on the number of targets (until maxRingPoints), so
	// a target keeps exactly its points when others come and go. A target's share of the ring
	// is uneven by about 1/sqrt(points): 512 per weight unit give ±4%.
	scale := 1.0
	if total := weights * ringPointsPerWeight; total > maxRingPoints {
		scale = float64(maxRingPoints) / float64(total)
	}
	type point struct {
		h     uint64
		owner uint32
	}
	pts := make([]point, 0, min(weights*ringPointsPerWeight, maxRingPoints)+len(ts))
	var buf []byte
	for i, t := range ts {
		k := max(1, int(float64(max(t.weight, 1)*ringPointsPerWeight)*scale))
		for j := 0; j < k; j++ {
			// The point names depend on the address only, so a target keeps its points when
			// others come and go.
			buf = strconv.AppendInt(append(append(buf[:0], t.addr...), '#'), int64(j), 10)
			pts = append(pts, point{hashBytes(buf), uint32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.h, b.h) })
	r := &ring{hashes: make([]uint64, len(pts)), owners: make([]uint32, len(pts))}
	for i, p := range pts {
		r.hashes[i], r.owners[i] = p.h, p.owner
	}
	bits := uint(max(1, bitsLen(len(pts)-1)))
	r.shift = 64 - bits
	r.index = make([]uint32, 1<<bits+1)
	j := 0
	for b := range r.index {
		for j < len(r.hashes) && r.hashes[j]>>r.shift < uint64(b) {
			j++
		}
		r.index[b] = uint32(j)
	}
	return r
}

// bitsLen is the number of bits n needs (0 for n ≤ 0).
func bitsLen(n int) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// first returns the index of the first point at or after key (len(r.hashes) if none: the ring
// wraps to its first point).
func (r *ring) first(key uint64) int {
	bkt := key >> r.shift
	lo, hi := int(r.index[bkt]), int(r.index[bkt+1])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.hashes[m] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (r *ring) pick(ts []*target, key uint64, hasKey bool, tried []int, load int64, now int64) int {
	n := len(ts)
	if n == 0 || len(r.hashes) == 0 {
		return -1
	}
	if !hasKey {
		key = rand.Uint64()
	}
	lo := r.first(key)
	limit := capacity(load, n)
	first := -1
	// Points are spread at random, so ~n·ln(n) of them visit almost every target: walking
	// 16n (not the whole ring) bounds the cost when most targets are down.
	steps := min(len(r.hashes), 16*n+64)
	for k := 0; k < steps; k++ {
		i := lo + k
		if i >= len(r.hashes) {
			i -= len(r.hashes)
		}
		o := int(r.owners[i])
		if o >= n || !usable(ts, o, tried, now) {
			continue
		}
		if first < 0 {
			first = o
		}
		if ts[o].st.inflight.Load() < limit {
			return o
		}
	}
	if first >= 0 {
		return first
	}
	return scan(ts, int(r.owners[lo%len(r.owners)]), tried, now)
}

// maglev is Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size M in which
// each target fills entries along its own permutation, in proportion to its weight. Lookup is
// one index: O(1). Overloaded or unavailable targets pass the key to the following entries.
type maglev struct{ table []uint32 }

var maglevSizes = []int{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071, 262139}

func newMaglev(ts []*target) *maglev {
	n := len(ts)
	if n == 0 {
		return &maglev{}
	}
	// A fixed table size (not one that follows n) keeps the table stable when targets come and
	// go; at least 100 entries per target keep the shares even.
	m := maglevSizes[len(maglevSizes)-1]
	for _, s := range maglevSizes {
		if s >= 65521 && s >= 100*n {
			m = s
			break
		}
	}
	offset := make([]int, n)
	skip := make([]int, n)
	maxW := 1
	for i, t := range ts {
		h1 := hashBytes([]byte(t.addr))
		h2 := hashBytes([]byte(t.addr + "#skip"))
		offset[i] = int(h1 % uint64(m))
		skip[i] = int(h2%uint64(m-1)) + 1
		maxW = max(maxW, t.weight)
	}
	table := make([]int32, m)
	for i := range table {
		table[i] = -1
	}
	next := make([]int, n)
	credit := make([]float64, n)
	filled := 0
	for filled < m {
		for i := 0; i < n && filled < m; i++ {
			credit[i] += float64(max(ts[i].weight, 1)) / float64(maxW)
			for credit[i] >= 1 && filled < m {
				credit[i]--
				for {
					c := (offset[i] + next[i]*skip[i]) % m
					next[i]++
					if table[c] < 0 {
						table[c] = int32(i)
						filled++
						break
					}
				}
			}
		}
	}
	p := &maglev{table: make([]uint32, m)}
	for i, v := range table {
		p.table[i] = uint32(v)
	}
	return p
}

func (p *maglev) pick(ts []*target, key uint64, hasKey bool, tried []int, load int64, now int64) int {
	n := len(ts)
	if n == 0 || len(p.table) == 0 {
		return -1
	}
	if !hasKey {
		key = rand.Uint64()
	}
	m := len(p.table)
	start := int(key % uint64(m))
	limit := capacity(load, n)
	first := -1
	// Walk on from the key's entry; the table interleaves targets, so a few steps find another.
	for k := 0; k < m && k < 4*n+16; k++ {
		i := start + k
		if i >= m {
			i -= m
		}
		o := int(p.table[i])
		if o >= n || !usable(ts, o, tried, now) {
			continue
		}
		if first < 0 {
			first = o
		}
		if ts[o].st.inflight.Load() < limit {
			return o
		}
	}
	if first >= 0 {
		return first
	}
	return scan(ts, int(key%uint64(n)), tried, now)
}

// hashBytes is 64-bit FNV-1a with a final avalanche (the murmur3 finalizer), so that nearby keys
// spread over the whole ring.
func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
