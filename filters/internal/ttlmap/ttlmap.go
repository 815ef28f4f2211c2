// Package ttlmap is a bounded map whose entries expire: the caches of verified credentials
// (basic_auth) and allowing decisions (forward_auth) the auth filters keep.
package ttlmap

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Key is a map key: the auth filters' keys are SHA-256 digests keyed with a secret of the
// filter's, so their bits are uniform and no client can choose where one lands in the table.
type Key = [32]byte

// ways is the number of entries a bucket holds.
const ways = 8

// Map holds at most max entries, each for ttl; safe for concurrent use. A lookup takes no lock
// and writes nothing shared (a cache hit, the common case, is a few plain loads on amd64): the
// table is an array of buckets of ways slots, each slot an atomic pointer to an immutable
// entry beside an atomic tag (the key's first 8 bytes) that spares loading entries of other
// keys. A reader may see a slot half-updated (a new tag, an old entry or the reverse); it
// compares the whole key in the entry it loaded, so it finds an entry put under its key or
// nothing, never another key's. Puts are serialized by mu.
type Map[V any] struct {
	t atomic.Pointer[table[V]]

	mu       sync.Mutex // serializes Put
	n        int        // entries in t, expired ones included until removed
	max      int
	maxSlots int   // the table grows up to this many slots: twice max, rounded up to a power of two
	ttl      int64 // nanoseconds
	cursor   int   // where eviction looks for an entry to drop when every bucket is live
}

type table[V any] struct {
	buckets []bucket[V]
	mask    uint64 // len(buckets) - 1
}

type bucket[V any] struct {
	tags [ways]atomic.Uint64
	ents [ways]atomic.Pointer[entry[V]]
}

// entry is never modified once published: a replaced value is a new entry.
type entry[V any] struct {
	key     Key
	v       V
	expires int64 // unix nanoseconds
}

// initialSlots is the table's first size (or less, for a smaller max): a large cache_size costs
// memory only as entries come.
const initialSlots = 2048

// New returns an empty map of at most size entries (at least 1), each kept for ttl nanoseconds.
func New[V any](size int, ttl int64) *Map[V] {
	size = max(size, 1)
	// At most half the slots are used: a bucket then rarely fills before the map does.
	maxSlots := max(ways, 1<<bits.Len(uint(2*size-1)))
	m := &Map[V]{max: size, maxSlots: maxSlots, ttl: ttl}
	m.t.Store(newTable[V](min(maxSlots, initialSlots)))
	return m
}

func newTable[V any](slots int) *table[V] {
	n := slots / ways
	return &table[V]{buckets: make([]bucket[V], n), mask: uint64(n - 1)}
}

// tagOf is k's first 8 bytes: they pick its first bucket and are compared before the entry.
func tagOf(k *Key) uint64 { return binary.LittleEndian.Uint64(k[:8]) }

// same reports whether a and b are equal, in four word comparisons (== on the arrays calls
// memequal).
func same(a, b *Key) bool {
	le := binary.LittleEndian
	return le.Uint64(a[0:])^le.Uint64(b[0:])|le.Uint64(a[8:])^le.Uint64(b[8:])|
		le.Uint64(a[16:])^le.Uint64(b[16:])|le.Uint64(a[24:])^le.Uint64(b[24:]) == 0
}

// altOf picks k's second bucket, where it goes when the first has no free slot (two choices
// keep a bucket from overflowing at the loads the map allows).
func altOf(k *Key) uint64 { return binary.LittleEndian.Uint64(k[8:16]) }

// Get returns k's value if it was put less than ttl before now (unix nanoseconds).
func (m *Map[V]) Get(k *Key, now int64) (v V, ok bool) {
	t := m.t.Load()
	tag := tagOf(k)
	b := &t.buckets[tag&t.mask]
	for range 2 { // k's first bucket, then its second
		for i := range b.tags {
			if b.tags[i].Load() != tag {
				continue
			}
			// The whole key, in the entry loaded: the tag and the slot may be from different Puts.
			if e := b.ents[i].Load(); e != nil && same(&e.key, k) {
				if now >= e.expires {
					return v, false
				}
				return e.v, true
			}
		}
		b = &t.buckets[altOf(k)&t.mask]
	}
	return v, false
}

// Put records v under k from now. When the map is full, expired entries go first, else one
// other (of k's buckets when they hold one, else the next one after the last evicted): no entry
// outlives its ttl and the map never holds more than max. When both of k's buckets are full,
// the table grows; at its largest size (a load of at most one half, where this is rare) the
// entry of the two expiring first is replaced, even when the map is not full.
func (m *Map[V]) Put(k *Key, v V, now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := &entry[V]{key: *k, v: v, expires: now + m.ttl}
	t := m.t.Load()
	b1, b2 := m.bucketsOf(t, k)
	for _, b := range [2]*bucket[V]{b1, b2} {
		for i := range b.ents {
			if old := b.ents[i].Load(); old != nil && old.key == *k {
				b.ents[i].Store(e)
				return
			}
		}
	}
	if m.n >= m.max {
		m.removeExpired(now)
		if m.n >= m.max {
			m.evictOne(b1, b2)
		}
	} else if 2*(m.n+1) > len(t.buckets)*ways && len(t.buckets)*ways < m.maxSlots {
		t = m.grow(t)
		b1, b2 = m.bucketsOf(t, k)
	}
	for !m.placeFree(b1, b2, e) {
		if len(t.buckets)*ways >= m.maxSlots {
			m.replaceSoonest(b1, b2, e)
			return
		}
		// Both buckets full below the table's largest size: grow rather than drop an entry.
		t = m.grow(t)
		b1, b2 = m.bucketsOf(t, k)
	}
}

func (m *Map[V]) bucketsOf(t *table[V], k *Key) (b1, b2 *bucket[V]) {
	return &t.buckets[tagOf(k)&t.mask], &t.buckets[altOf(k)&t.mask]
}

// placeFree puts e in a free slot of b1, else of b2; false when both are full.
func (m *Map[V]) placeFree(b1, b2 *bucket[V], e *entry[V]) bool {
	for _, b := range [2]*bucket[V]{b1, b2} {
		for i := range b.ents {
			if b.ents[i].Load() == nil {
				m.n++
				store(b, i, e)
				return true
			}
		}
	}
	return false
}

// replaceSoonest puts e over the entry of b1 or b2 expiring first (an expired one if there is
// one); both are full.
func (m *Map[V]) replaceSoonest(b1, b2 *bucket[V], e *entry[V]) {
	b, slot, soonest := b1, 0, b1.ents[0].Load().expires
	for _, c := range [2]*bucket[V]{b1, b2} {
		for i := range c.ents {
			if x := c.ents[i].Load().expires; x < soonest {
				b, slot, soonest = c, i, x
			}
		}
	}
	store(b, slot, e)
}

// store sets a slot: entry first, then tag, so that a reader comparing the old tag meanwhile
// loads an entry whose key is not its own and moves on.
func store[V any](b *bucket[V], i int, e *entry[V]) {
	b.ents[i].Store(e)
	b.tags[i].Store(tagOf(&e.key))
}

// removeExpired drops every entry expired at now.
func (m *Map[V]) removeExpired(now int64) {
	t := m.t.Load()
	for bi := range t.buckets {
		b := &t.buckets[bi]
		for i := range b.ents {
			if e := b.ents[i].Load(); e != nil && now >= e.expires {
				b.ents[i].Store(nil)
				m.n--
			}
		}
	}
}

// evictOne drops one live entry: one of b1's or b2's (its slot is then reused), else the first
// found after the cursor.
func (m *Map[V]) evictOne(b1, b2 *bucket[V]) {
	for _, b := range [2]*bucket[V]{b1, b2} {
		for i := range b.ents {
			if b.ents[i].Load() != nil {
				b.ents[i].Store(nil)
				m.n--
				return
			}
		}
	}
	t := m.t.Load()
	slots := len(t.buckets) * ways
	for range slots {
		m.cursor = (m.cursor + 1) % slots
		s := &t.buckets[m.cursor/ways].ents[m.cursor%ways]
		if s.Load() != nil {
			s.Store(nil)
			m.n--
			return
		}
	}
}

// grow publishes a table of twice t's slots holding t's entries. Readers still on t find what
// it held (entries are immutable; only Put, serialized, changes the table).
func (m *Map[V]) grow(t *table[V]) *table[V] {
	nt := newTable[V](2 * len(t.buckets) * ways)
	m.n = 0
	for bi := range t.buckets {
		for i := range t.buckets[bi].ents {
			e := t.buckets[bi].ents[i].Load()
			if e == nil {
				continue
			}
			// An old bucket's entries split between two new ones: they fit.
			b1, b2 := m.bucketsOf(nt, &e.key)
			if !m.placeFree(b1, b2, e) {
				m.replaceSoonest(b1, b2, e)
			}
		}
	}
	m.t.Store(nt)
	return nt
}

// Len is the number of entries, expired ones included until a Put removes them.
func (m *Map[V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}
