package wasm

import (
	"testing"
	"unsafe"
)

func TestMappedMemory(t *testing.T) {
	const limit = 5 << 20 // not a multiple of a huge page
	lm := newLinearMemory(3<<20, limit)
	m, ok := lm.(*mappedMemory)
	if !ok {
		t.Fatalf("got %T, want a mapping", lm)
	}
	b := m.Reallocate(3 << 20)
	if len(b) != 3<<20 || cap(b) != 3<<20 {
		t.Fatalf("len %d cap %d, want 3 MiB each", len(b), cap(b))
	}
	base := unsafe.SliceData(b)
	if uintptr(unsafe.Pointer(base))%hugePage != 0 {
		t.Errorf("memory at %p, not aligned to a huge page", base)
	}
	if b[0] != 0 || b[len(b)-1] != 0 {
		t.Error("fresh memory is not zero")
	}
	b[0], b[len(b)-1] = 1, 2
	grown := m.Reallocate(limit)
	if unsafe.SliceData(grown) != base || grown[0] != 1 || grown[3<<20-1] != 2 || len(grown) != limit {
		t.Error("growing moved the memory or lost its contents")
	}
	grown[limit-1] = 3 // the last byte is writable
	if m.Reallocate(limit+1) != nil {
		t.Error("grew past the maximum")
	}
	m.Free()
}

func TestHeapMemoryFallback(t *testing.T) {
	h := &heapMemory{max: 1 << 20}
	b := h.Reallocate(64 << 10)
	b[0] = 7
	g := h.Reallocate(1 << 20)
	if len(g) != 1<<20 || g[0] != 7 {
		t.Errorf("grown to %d bytes, first byte %d; want 1 MiB keeping 7", len(g), g[0])
	}
	if h.Reallocate(1<<20+1) != nil {
		t.Error("grew past the maximum")
	}
}

// TestGoGuestOnHugePages checks that a Go guest, whose memory starts above a huge page, gets
// the mapped memory, and a small WAT guest wazero's default.
func TestGoGuestOnHugePages(t *testing.T) {
	for _, tc := range []struct {
		guest  string
		mapped bool
	}{{"goguest", true}, {"bench", false}} {
		f, _ := newFilter(t, tc.guest, nil)
		if got := f.memory != nil; got != tc.mapped {
			t.Errorf("%s: own memory allocator %v, want %v", tc.guest, got, tc.mapped)
			continue
		}
		in, err := f.acquire()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := in.mod.Memory().Read(0, 1)
		aligned := uintptr(unsafe.Pointer(unsafe.SliceData(b)))%hugePage == 0
		f.release(in)
		if tc.mapped && !aligned {
			t.Errorf("%s: memory not on the huge-page-aligned mapping", tc.guest)
		}
	}
}
