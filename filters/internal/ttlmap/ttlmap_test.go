package ttlmap

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"
)

// key returns a uniformly spread key, as the filters' digests are.
func key(i int) Key {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// TestExpiryAndBound: an entry is found until its ttl has passed; a full map removes expired
// entries first, else one other, and never holds more than max.
func TestExpiryAndBound(t *testing.T) {
	m := New[string](2, 100)
	a, b, c := key(1), key(2), key(3)
	m.Put(&a, "a", 0)
	if v, ok := m.Get(&a, 99); !ok || v != "a" {
		t.Fatalf("Get before the ttl: %q %v", v, ok)
	}
	if _, ok := m.Get(&a, 100); ok {
		t.Fatal("Get at the ttl found the entry")
	}
	m.Put(&b, "b", 50)
	m.Put(&c, "c", 120) // full: a has expired and goes, b stays
	if _, ok := m.Get(&b, 120); !ok {
		t.Error("a live entry was evicted while an expired one was there")
	}
	if _, ok := m.Get(&c, 120); !ok || m.Len() != 2 {
		t.Errorf("after a Put into a full map: c found %v, %d entries; want true, 2", ok, m.Len())
	}
	m.Put(&a, "a2", 130) // full, nothing expired: one goes
	if m.Len() != 2 {
		t.Errorf("%d entries, want at most 2", m.Len())
	}
	if v, ok := m.Get(&a, 130); !ok || v != "a2" {
		t.Errorf("the new entry: %q %v", v, ok)
	}
	m.Put(&a, "a3", 140) // present: replaced, nothing evicted
	if v, _ := m.Get(&a, 140); v != "a3" || m.Len() != 2 {
		t.Errorf("replacing: %q with %d entries", v, m.Len())
	}
}

// TestKeyComparedWhole: a key sharing another's tag (its first 8 bytes, which pick the bucket)
// is not served the other's value.
func TestKeyComparedWhole(t *testing.T) {
	m := New[string](16, 100)
	a := key(1)
	b := a
	b[31] ^= 1
	m.Put(&a, "a", 0)
	if v, ok := m.Get(&b, 1); ok {
		t.Fatalf("a key differing in its last byte found %q", v)
	}
	m.Put(&b, "b", 0)
	if va, _ := m.Get(&a, 1); va != "a" {
		t.Errorf("a: %q", va)
	}
	if vb, _ := m.Get(&b, 1); vb != "b" {
		t.Errorf("b: %q", vb)
	}
}

// TestBoundAndGrowth: many more keys than max never hold more than max; a map that grew past
// its first table still finds what it holds; a large max allocates its table as entries come.
func TestBoundAndGrowth(t *testing.T) {
	const max = 5000
	m := New[int](max, 1000)
	if n := len(m.t.Load().buckets) * ways; n != initialSlots {
		t.Errorf("first table: %d slots, want %d", n, initialSlots)
	}
	for i := range max {
		k := key(i)
		m.Put(&k, i, 0)
	}
	if n := len(m.t.Load().buckets) * ways; n < 2*max || n != m.maxSlots {
		t.Errorf("%d slots after %d entries, want %d", n, max, m.maxSlots)
	}
	found := 0
	for i := range max {
		k := key(i)
		if v, ok := m.Get(&k, 1); ok {
			if v != i {
				t.Fatalf("key %d: value %d", i, v)
			}
			found++
		}
	}
	// Two buckets of 8 slots to choose from, at a load of at most one half: none overflows.
	if found != max || m.Len() != found {
		t.Errorf("%d of %d entries found, Len %d", found, max, m.Len())
	}
	for i := max; i < 3*max; i++ {
		k := key(i)
		m.Put(&k, i, 10)
		if m.Len() > max {
			t.Fatalf("%d entries after %d Puts, max %d", m.Len(), i+1, max)
		}
	}
	// All expired: a Put into the full map removes them all.
	k := key(-1)
	m.Put(&k, -1, 2000)
	if m.Len() != 1 {
		t.Errorf("after the entries expired: %d entries, want 1", m.Len())
	}
	if len(m.t.Load().buckets)*ways != m.maxSlots {
		t.Error("the table grew past maxSlots")
	}
}

// TestConcurrent (run with -race): Gets during Puts that replace, evict and grow never return
// another key's value.
func TestConcurrent(t *testing.T) {
	m := New[int](300, 1e9)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := (i*7 + w) % 1000
				k := key(n)
				if v, ok := m.Get(&k, 1); ok && v != n {
					t.Errorf("key %d: value %d", n, v)
					return
				}
			}
		}()
	}
	for i := range 4000 {
		n := i % 1000
		k := key(n)
		m.Put(&k, n, 0)
	}
	close(stop)
	wg.Wait()
	if m.Len() > 300 {
		t.Errorf("%d entries, max 300", m.Len())
	}
}

func TestGetAllocatesNothing(t *testing.T) {
	m := New[*int](8, 1e9)
	k, v := key(7), new(int)
	m.Put(&k, v, 0)
	if n := testing.AllocsPerRun(100, func() { _, _ = m.Get(&k, 1) }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func BenchmarkGet(b *testing.B) {
	m := New[*int](10000, 1e9)
	k, v := key(7), new(int)
	m.Put(&k, v, 0)
	for b.Loop() {
		_, _ = m.Get(&k, 1)
	}
}
