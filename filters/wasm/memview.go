package wasm

import "github.com/tetratelabs/wazero/experimental"

// Host functions reach guest memory through instance.memory, the instance's own copy of the
// slice wazero keeps as the guest's linear memory, instead of mod.Memory().Read: two interface
// calls and wazero's bounds check for each argument, about 60 instructions a view, several
// views a host call. The copy cannot go stale: wazero replaces its slice only with what the
// memory's allocator returns (when it makes the memory and on every memory.grow, from the
// guest or the host), and every instance's allocator is a trackedMemory, which stores that
// same slice in the instance. A view is still only valid until the guest runs again (a grow may
// move the memory), as with wazero's Read.

// trackedMemory is an instance's linear memory: the allocator the filter chose (a mapping, the
// isolated snapshot's mapping, or a Go slice as wazero's default), recording each slice it
// hands wazero in the instance.
type trackedMemory struct {
	inner experimental.LinearMemory
	buf   *[]byte
}

func (t *trackedMemory) Reallocate(size uint64) []byte {
	b := t.inner.Reallocate(size)
	if b != nil {
		*t.buf = b
	}
	return b
}

// Free frees the memory once wazero closes the module, which happens only when no request
// holds the instance: nothing views it afterwards.
func (t *trackedMemory) Free() { t.inner.Free() }

// trackMemory returns the allocator of in's memory: alloc's (nil: a Go slice, as wazero's
// default), tracked in in.memory.
func (in *instance) trackMemory(alloc experimental.MemoryAllocator) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
		var lm experimental.LinearMemory
		if alloc != nil {
			lm = alloc.Allocate(capBytes, maxBytes)
		} else {
			lm = &heapMemory{buf: make([]byte, 0, capBytes), max: maxBytes}
		}
		return &trackedMemory{inner: lm, buf: &in.memory}
	})
}

// heapMemory is a linear memory in a Go slice that grows by copying, as wazero's default.
type heapMemory struct {
	buf []byte
	max uint64
}

func (h *heapMemory) Reallocate(size uint64) []byte {
	if size > h.max {
		return nil
	}
	if size > uint64(cap(h.buf)) {
		nb := make([]byte, size, min(max(size, 2*uint64(cap(h.buf))), h.max))
		copy(nb, h.buf)
		h.buf = nb
	}
	h.buf = h.buf[:size]
	return h.buf
}

func (h *heapMemory) Free() { h.buf = nil }

// view returns guest memory [off, off+n) without copying; out of range traps.
func (in *instance) view(off, n uint32, what string) []byte {
	if n == 0 {
		return nil
	}
	end := uint64(off) + uint64(n)
	if end > uint64(len(in.memory)) {
		panic(trapf("%s: memory range [%d, %d) is out of bounds", what, off, end))
	}
	return in.memory[off:end:end]
}

// read returns guest memory [off, off+n), ok false when out of range.
func (in *instance) read(off, n uint32) ([]byte, bool) {
	end := uint64(off) + uint64(n)
	if end > uint64(len(in.memory)) {
		return nil, false
	}
	return in.memory[off:end:end], true
}
