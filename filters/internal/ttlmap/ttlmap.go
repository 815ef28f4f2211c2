// Package ttlmap is a bounded map whose entries expire: the caches of verified credentials
// (basic_auth) and allowing decisions (forward_auth) the auth filters keep.
package ttlmap

import "sync"

// Map holds at most max entries, each for ttl; safe for concurrent use. A lookup takes the read
// lock only: cache hits, the common case, do not serialize requests.
type Map[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]entry[V]
	max int
	ttl int64 // nanoseconds
}

type entry[V any] struct {
	v       V
	expires int64 // unix nanoseconds
}

// New returns an empty map of at most size entries (at least 1), each kept for ttl nanoseconds.
func New[K comparable, V any](size int, ttl int64) *Map[K, V] {
	size = max(size, 1)
	return &Map[K, V]{m: make(map[K]entry[V], min(size, 1024)), max: size, ttl: ttl}
}

// Get returns k's value if it was put less than ttl before now (unix nanoseconds). k is a
// pointer: the auth filters' keys are 32-byte digests.
func (c *Map[K, V]) Get(k *K, now int64) (v V, ok bool) {
	c.mu.RLock()
	e, found := c.m[*k]
	c.mu.RUnlock()
	if !found || now >= e.expires {
		return v, false
	}
	return e.v, true
}

// Put records v under k from now. When the map is full, expired entries go first, else an
// arbitrary one (Go's map iteration starts at a random place): no entry outlives its ttl and
// the map never grows past max.
func (c *Map[K, V]) Put(k *K, v V, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[*k]; !ok && len(c.m) >= c.max {
		evicted := 0
		for key, e := range c.m {
			if now >= e.expires {
				delete(c.m, key)
				evicted++
			}
		}
		if evicted == 0 {
			for key := range c.m {
				delete(c.m, key)
				break
			}
		}
	}
	c.m[*k] = entry[V]{v: v, expires: now + c.ttl}
}

// Len is the number of entries, expired ones included until a Put evicts them.
func (c *Map[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
