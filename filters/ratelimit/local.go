package ratelimit

import (
	"sync"
)

const (
	shardBits = 6
	numShards = 1 << shardBits

	// DefaultMaxKeys bounds the keys a local store keeps at once. An entry costs 30 to 50 bytes
	// (the map holds 64-bit key hashes, not the keys), so the bound is under 16MiB per filter.
	DefaultMaxKeys = 1 << 18

	// sweepEvery is how often (in store time, nanoseconds) a shard drops its idle keys when it
	// gains a new one.
	sweepEvery = int64(1e9)
	// evictSample is how many entries a full shard looks at to choose one to drop.
	evictSample = 8
)

// localStore is the in-process GCRA state: 64 shards, each a mutex, a map from the key's 64-bit
// hash to a slot, and the slots' TATs in nanoseconds. There is no global lock: a decision locks
// one shard. The map holds slot indexes rather than TATs so that a known key costs one map lookup
// (a TAT held in the map would need a second hashing to be written back); map and slots hold no
// pointers, so the garbage collector never scans them.
//
// Memory is bounded twice. A key whose TAT has passed carries no information (see gcra), so
// shards drop such idle keys every sweepEvery, and a map much smaller than its peak is rebuilt so
// Go gives the memory back. And each shard holds at most maxKeys/64 keys: a new key arriving at
// a full shard first evicts, among a few sampled entries, every idle one or else the one whose TAT
// is earliest (the one closest to idle, so the one whose loss admits the fewest extra requests).
// A flood of distinct keys therefore costs bounded memory and O(1) work per request.
type localStore struct {
	g        gcra
	shardCap int
	shards   [numShards]shard
}

type shard struct {
	mu        sync.Mutex
	index     map[uint64]uint32 // key hash → slot
	tats      []int64           // slot → TAT
	free      []uint32          // unused slots
	lastSweep int64
	peak      int     // largest len(index) since the map was made
	_         [8]byte // with the fields above, keeps shards on separate cache lines
}

func newLocalStore(g gcra, maxKeys int) *localStore {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	s := &localStore{g: g, shardCap: max(maxKeys/numShards, 1)}
	for i := range s.shards {
		s.shards[i].index = make(map[uint64]uint32)
	}
	return s
}

// take decides one request for the key whose hash is h at now (nanoseconds, any fixed origin).
// It returns whether the request is admitted and the key's TAT minus now afterwards.
func (s *localStore) take(h uint64, now int64) (bool, int64) {
	sh := &s.shards[h>>(64-shardBits)]
	sh.mu.Lock()
	slot, known := sh.index[h]
	tat := now // a key with no state is idle
	if known {
		tat = sh.tats[slot]
	}
	ok, tat := s.g.decide(tat, now)
	if ok {
		if known {
			sh.tats[slot] = tat
		} else {
			sh.insert(h, tat, s.shardCap, now)
		}
	}
	sh.mu.Unlock()
	return ok, tat - now
}

// peek returns TAT minus now for h without changing anything (0 for an idle key).
func (s *localStore) peek(h uint64, now int64) int64 {
	sh := &s.shards[h>>(64-shardBits)]
	sh.mu.Lock()
	tat := now
	if slot, ok := sh.index[h]; ok {
		tat = sh.tats[slot]
	}
	sh.mu.Unlock()
	return max(tat-now, 0)
}

// insert adds a key, making room first; the caller holds sh.mu.
func (sh *shard) insert(h uint64, tat int64, capacity int, now int64) {
	if now-sh.lastSweep >= sweepEvery {
		sh.sweep(now)
	}
	if len(sh.index) >= capacity {
		sh.evict(now)
	}
	var slot uint32
	if n := len(sh.free); n > 0 {
		slot = sh.free[n-1]
		sh.free = sh.free[:n-1]
	} else {
		slot = uint32(len(sh.tats))
		sh.tats = append(sh.tats, 0)
	}
	sh.tats[slot] = tat
	sh.index[h] = slot
	sh.peak = max(sh.peak, len(sh.index))
}

func (sh *shard) remove(h uint64, slot uint32) {
	delete(sh.index, h)
	sh.free = append(sh.free, slot)
}

// evict drops, among a few sampled keys, the idle ones, or else the one with the earliest TAT.
func (sh *shard) evict(now int64) {
	// Map iteration starts at a random entry, so this samples the shard.
	var victim uint64
	var victimSlot uint32
	victimTAT, seen, dropped := int64(0), 0, false
	for h, slot := range sh.index {
		if tat := sh.tats[slot]; tat <= now {
			sh.remove(h, slot)
			dropped = true
		} else if seen == 0 || tat < victimTAT {
			victim, victimSlot, victimTAT = h, slot, tat
		}
		seen++
		if seen == evictSample {
			break
		}
	}
	if !dropped {
		sh.remove(victim, victimSlot)
	}
}

// sweep drops every idle key, and rebuilds a shard that shrank to a quarter of its peak.
func (sh *shard) sweep(now int64) {
	sh.lastSweep = now
	for h, slot := range sh.index {
		if sh.tats[slot] <= now {
			sh.remove(h, slot)
		}
	}
	if sh.peak >= 1024 && len(sh.index) < sh.peak/4 {
		index := make(map[uint64]uint32, len(sh.index))
		tats := make([]int64, 0, len(sh.index))
		for h, slot := range sh.index {
			index[h] = uint32(len(tats))
			tats = append(tats, sh.tats[slot])
		}
		sh.index, sh.tats, sh.free, sh.peak = index, tats, nil, len(index)
	}
}

// len is the number of keys held (for tests).
func (s *localStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.index)
		sh.mu.Unlock()
	}
	return n
}
