package ttlmap

import "testing"

// TestExpiryAndBound: an entry is found until its ttl has passed; a full map evicts expired
// entries first, else one other, and never holds more than max.
func TestExpiryAndBound(t *testing.T) {
	m := New[[2]byte, string](2, 100)
	a, b, c := [2]byte{1}, [2]byte{2}, [2]byte{3}
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

func TestGetAllocatesNothing(t *testing.T) {
	m := New[[32]byte, *int](8, 1e9)
	k, v := [32]byte{7}, new(int)
	m.Put(&k, v, 0)
	if n := testing.AllocsPerRun(100, func() { _, _ = m.Get(&k, 1) }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}
