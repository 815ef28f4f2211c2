package ratelimit

import (
	"sync"
)

const (
	shardBits = 6
	numShards = 1 << shardBits

	// DefaultMaxKeys bounds the keys a local store keeps at once. An entry costs about 20 bytes
	// (the map holds 64-bit key hashes, not the keys), so the bound is a few MiB per filter.
	DefaultMaxKeys = 1 << 18

	// sweepEvery is how often (in store time, nanoseconds) a shard drops its idle keys when it
	// gains a new one.
	sweepEvery = int64(1e9)
	// evictSample is how many entries a full shard looks at to choose one to drop.
	evictSample = 8
)

// localStore is the in-process GCRA state: 64 shards, each a mutex and a map from the key's
// 64-bit hash to its TAT in nanoseconds. There is no global lock: a decision locks one shard.
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
	m         map[uint64]int64
	lastSweep int64
	peak      int      // largest len(m) since the map was made
	_         [32]byte // keeps shards on separate cache lines
}

func newLocalStore(g gcra, maxKeys int) *localStore {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	s := &localStore{g: g, shardCap: max(maxKeys/numShards, 1)}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]int64)
	}
	return s
}

// take decides one request for the key whose hash is h at now (nanoseconds, any fixed origin).
// It returns whether the request is admitted and the key's TAT minus now afterwards.
func (s *localStore) take(h uint64, now int64) (bool, int64) {
	sh := &s.shards[h>>(64-shardBits)]
	sh.mu.Lock()
	tat, known := sh.m[h]
	if !known {
		tat = now // a key with no state is idle
	}
	ok, tat := s.g.decide(tat, now)
	if ok {
		if !known {
			sh.admit(s.shardCap, now)
		}
		sh.m[h] = tat
	}
	sh.mu.Unlock()
	return ok, tat - now
}

// peek returns TAT minus now for h without changing anything (0 for an idle key).
func (s *localStore) peek(h uint64, now int64) int64 {
	sh := &s.shards[h>>(64-shardBits)]
	sh.mu.Lock()
	tat := sh.m[h]
	sh.mu.Unlock()
	return max(tat-now, 0)
}

// admit makes room for one new key; the caller holds sh.mu.
func (sh *shard) admit(capacity int, now int64) {
	if now-sh.lastSweep >= sweepEvery {
		sh.sweep(now)
	}
	if len(sh.m) < capacity {
		sh.peak = max(sh.peak, len(sh.m)+1)
		return
	}
	// Map iteration starts at a random entry, so this samples the shard.
	var victim uint64
	victimTAT, seen, dropped := int64(0), 0, false
	for k, tat := range sh.m {
		if tat <= now {
			delete(sh.m, k)
			dropped = true
		} else if seen == 0 || tat < victimTAT {
			victim, victimTAT = k, tat
		}
		seen++
		if seen == evictSample {
			break
		}
	}
	if !dropped {
		delete(sh.m, victim)
	}
}

// sweep drops every idle key, and rebuilds a map that shrank to a quarter of its peak.
func (sh *shard) sweep(now int64) {
	sh.lastSweep = now
	for k, tat := range sh.m {
		if tat <= now {
			delete(sh.m, k)
		}
	}
	if sh.peak >= 1024 && len(sh.m) < sh.peak/4 {
		m := make(map[uint64]int64, len(sh.m))
		for k, v := range sh.m {
			m[k] = v
		}
		sh.m = m
		sh.peak = len(m)
	}
}

// len is the number of keys held (for tests and metrics).
func (s *localStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
