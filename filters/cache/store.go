package cache

import (
	"bytes"
	"hash/maphash"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// kv is a stored response header.
type kv struct{ k, v []byte }

// varyField is a request header a response varies on, with the request's values when stored.
type varyField struct {
	name string
	vals [][]byte
}

// entry is one stored response: a variant of its group. Entries are immutable once inserted
// (only the LRU links change, under the store's lock), so a request may read one after
// unlocking, while a concurrent insert evicts it.
type entry struct {
	group      *group
	prev, next *entry // LRU list, most recently used at the head

	vary       []varyField
	status     int
	headers    []kv
	etag       []byte
	lastModRaw []byte    // the Last-Modified value, sent back as If-Modified-Since
	lastMod    time.Time // zero when the response had no (valid) Last-Modified
	body       []byte
	stored     time.Time     // when the response arrived
	initialAge time.Duration // its age then (Age header, or the Date header's lag)
	lifetime   time.Duration // freshness lifetime
	swr        time.Duration // stale-while-revalidate window after it
	sie        time.Duration // stale-if-error window after it
	mustReval  bool          // must-revalidate: never served stale
	size       int64
}

// age is the entry's current age (RFC 9111 §4.2.3).
func (e *entry) age(now time.Time) time.Duration { return e.initialAge + now.Sub(e.stored) }

// group holds the variants stored for one URL (host and request target).
type group struct {
	hash      uint64
	host, uri []byte
	variants  []*entry
}

// flight is a fetch from the upstream that identical requests wait for instead of repeating.
type flight struct {
	done    chan struct{}
	started time.Time
}

// store is the cache's memory: variants by URL, one LRU list over all of them, and the fetches
// in flight. One mutex guards it all; it is held for map and list operations only, never while
// a body is copied or the upstream is waited for.
type store struct {
	mu      sync.Mutex
	seed    maphash.Seed
	groups  map[uint64]*group
	flights map[uint64]*flight
	head    *entry
	tail    *entry
	bytes   int64
	max     int64
	entries int
}

func newStore(max int64) *store {
	return &store{seed: maphash.MakeSeed(), groups: map[uint64]*group{}, flights: map[uint64]*flight{}, max: max}
}

// hash is the key of a URL.
func (s *store) hash(host, uri []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.Write(host)
	h.WriteByte(0)
	h.Write(uri)
	return h.Sum64()
}

// lookup returns the stored variant of the URL that matches the request's headers, marking it
// recently used, or nil.
func (s *store) lookup(h uint64, host, uri []byte, req *fasthttp.RequestHeader) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[h]
	if g == nil || !bytes.Equal(g.host, host) || !bytes.Equal(g.uri, uri) {
		return nil
	}
	for _, e := range g.variants {
		if varyMatches(e.vary, req) {
			s.touch(e)
			return e
		}
	}
	return nil
}

// varyMatches reports whether req carries the same values as the request that produced a
// stored response, for every header it varies on.
func varyMatches(fields []varyField, req *fasthttp.RequestHeader) bool {
	for i := range fields {
		f := &fields[i]
		got := req.PeekAll(f.name)
		if len(got) != len(f.vals) {
			return false
		}
		for j := range got {
			if !bytes.Equal(trim(got[j]), f.vals[j]) {
				return false
			}
		}
	}
	return true
}

// insert stores e for the URL, replacing a variant with the same vary values, and evicts the
// least recently used entries until the store fits in max.
func (s *store) insert(h uint64, host, uri []byte, e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[h]
	if g != nil && (!bytes.Equal(g.host, host) || !bytes.Equal(g.uri, uri)) {
		s.dropGroup(g) // a hash collision: the newer URL takes the slot
		g = nil
	}
	if g == nil {
		g = &group{hash: h, host: append([]byte(nil), host...), uri: append([]byte(nil), uri...)}
		s.groups[h] = g
	}
	for _, old := range g.variants {
		if sameVary(old.vary, e.vary) {
			s.unlink(old)
			break
		}
	}
	s.groups[h] = g // unlinking the old variant may have dropped an emptied group
	e.group = g
	g.variants = append(g.variants, e)
	s.pushFront(e)
	s.bytes += e.size
	s.entries++
	for s.bytes > s.max && s.tail != nil {
		s.unlink(s.tail)
	}
}

func sameVary(a, b []varyField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || len(a[i].vals) != len(b[i].vals) {
			return false
		}
		for j := range a[i].vals {
			if !bytes.Equal(a[i].vals[j], b[i].vals[j]) {
				return false
			}
		}
	}
	return true
}

// invalidate drops every variant of the URL (after an unsafe method changed it).
func (s *store) invalidate(h uint64, host, uri []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[h]; g != nil && bytes.Equal(g.host, host) && bytes.Equal(g.uri, uri) {
		s.dropGroup(g)
	}
}

func (s *store) dropGroup(g *group) {
	for len(g.variants) > 0 {
		s.unlink(g.variants[0])
	}
}

// unlink removes e from the LRU list, its group and the byte count.
func (s *store) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
	s.bytes -= e.size
	s.entries--
	g := e.group
	for i, v := range g.variants {
		if v == e {
			g.variants = append(g.variants[:i], g.variants[i+1:]...)
			break
		}
	}
	if len(g.variants) == 0 && s.groups[g.hash] == g {
		delete(s.groups, g.hash)
	}
}

func (s *store) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

// touch moves e to the head of the LRU list.
func (s *store) touch(e *entry) {
	if s.head == e {
		return
	}
	// Unlink without the bookkeeping of unlink, then push.
	if e.prev != nil {
		e.prev.next = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	s.pushFront(e)
}

// join registers interest in fetching the URL. It returns (f, true) when the caller should
// fetch and then call release(f), or (f, false) when another request is already fetching and
// the caller may wait on f.done. A fetch older than timeout is presumed lost (its request
// failed without releasing) and taken over.
func (s *store) join(h uint64, now time.Time, timeout time.Duration) (*flight, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flights[h]; f != nil && now.Sub(f.started) < timeout {
		return f, false
	}
	f := &flight{done: make(chan struct{}), started: now}
	s.flights[h] = f
	return f, true
}

// release ends a fetch and wakes the requests waiting on it.
func (s *store) release(h uint64, f *flight) {
	s.mu.Lock()
	if s.flights[h] == f {
		delete(s.flights, h)
	}
	s.mu.Unlock()
	close(f.done)
}

// stats returns the number of entries and bytes held.
func (s *store) stats() (entries int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries, s.bytes
}
