package jwt

import (
	"bytes"
	"hash/maphash"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// The verified-token cache lets a client that repeats its token skip parsing, the signature check
// and claim decoding: a hit costs a hash, a map lookup and a constant-time compare.
//
// Entries are keyed by a seeded hash of the token's end (key), but a hit also compares the whole token, so a
// hash collision can never make one token pass for another. That compare need not be
// constant-time: it only runs when a request's token hashes to a cached token's bucket, and with
// a random per-process seed a client cannot aim a forgery at a bucket, so compare timing says
// nothing about tokens the client does not already hold.
const (
	cacheShards = 16
	// cacheBytes bounds the memory the cache charges itself for (tokens plus an estimate of their
	// decoded claims).
	cacheBytes = 8 << 20
	// cacheMaxTTL bounds how long an entry lives whatever its exp says.
	cacheMaxTTL = time.Hour
	// sweepEvery limits the full scans for expired entries a full shard does.
	sweepEvery = time.Second
)

type cacheEntry struct {
	token []byte
	// set is the key set that verified the token; after a key rotation the entry no longer counts.
	set    *keySet
	claims engine.Claims
	// fwd holds the forward_claims header values, in the filter's order; nil omits the header.
	fwd [][]byte
	// expires is when the entry stops counting (Unix nanoseconds): the token's exp plus leeway,
	// capped at cacheMaxTTL from when it was stored.
	expires int64
	// from is when the entry starts counting: nbf (or iat) minus leeway; 0 if neither was set.
	from int64
	size int
}

type cacheShard struct {
	mu        sync.RWMutex
	m         map[uint64]*cacheEntry
	bytes     int
	lastSweep int64
	_         [64]byte // keep shards' locks on separate cache lines
}

type tokenCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

func newTokenCache() *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[uint64]*cacheEntry{}
	}
	return c
}

// hashTail is how many of a token's last bytes its cache key hashes.
const hashTail = 64

// key is tok's cache key: a seeded hash of its last hashTail bytes, which hold the signature
// (43 characters for HS256, more for the others) and the end of the claims. Hashing the whole
// token (a few hundred bytes) cost about three times as much. Two tokens sharing their last 64
// bytes only share a key: an entry is used only when its whole token equals the request's (get),
// and only verified tokens are stored, so the worst a shared key does is make one evict the
// other.
func (c *tokenCache) key(tok []byte) uint64 {
	return maphash.Bytes(c.seed, tok[max(len(tok)-hashTail, 0):])
}

// get returns the entry for tok if it was verified with set and is still valid at now.
func (c *tokenCache) get(tok []byte, set *keySet, now int64) *cacheEntry {
	h := c.key(tok)
	s := &c.shards[h%cacheShards]
	s.mu.RLock()
	e := s.m[h]
	s.mu.RUnlock()
	if e == nil || e.set != set || now >= e.expires || now < e.from || !bytes.Equal(e.token, tok) {
		return nil
	}
	return e
}

// put stores e (whose token the cache now owns), evicting expired entries first and then
// arbitrary ones until it fits the shard's budget.
func (c *tokenCache) put(e *cacheEntry, now int64) {
	e.size = 3*len(e.token) + 256
	const budget = cacheBytes / cacheShards
	if e.size > budget {
		return
	}
	h := c.key(e.token)
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[h]; old != nil {
		s.bytes -= old.size
		delete(s.m, h)
	}
	if s.bytes+e.size > budget && now-s.lastSweep >= int64(sweepEvery) {
		s.lastSweep = now
		for k, old := range s.m {
			if now >= old.expires {
				s.bytes -= old.size
				delete(s.m, k)
			}
		}
	}
	// Map iteration order is random, so this evicts random entries: no bookkeeping per hit.
	for k, old := range s.m {
		if s.bytes+e.size <= budget {
			break
		}
		s.bytes -= old.size
		delete(s.m, k)
	}
	s.m[h] = e
	s.bytes += e.size
}

// len counts the entries, for tests.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
