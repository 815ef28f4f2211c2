package wasm

import (
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on amd64 and arm64 (4 KiB base pages).
const hugePage = 2 << 20

// memoryAllocatorFor returns the linear memory allocator for guests whose memory starts at
// minBytes: mappedMemory for those of at least a huge page, nil (wazero's default, a Go heap
// slice on 4 KiB pages) for smaller ones, where a huge page would multiply their footprint. A
// Go guest starts at about 2.3 MiB and touches it all over on every call (its stacks, its heap,
// the runtime's state), so under load each of its requests costs dozens of TLB misses on top of
// the host's own; on huge pages it needs two entries.
func memoryAllocatorFor(minBytes uint64) experimental.MemoryAllocator {
	if minBytes < hugePage {
		return nil
	}
	return experimental.MemoryAllocatorFunc(newLinearMemory)
}

// mappedMemory is a guest's linear memory in a private anonymous mapping of its maximum size
// (memory_limit at most), aligned to a huge page and advised MADV_HUGEPAGE. Only pages the
// guest touches become resident; it grows in place, without wazero's copy. The kernel ignores
// the advice where transparent huge pages are off ("never").
//
// Freeing unmaps it, so nothing may keep a view of guest memory past the call that got it:
// every host function copies what it keeps (header values, bodies, log lines).
type mappedMemory struct {
	region []byte // the whole mapping, for munmap
	mem    []byte // the huge-page-aligned part the guest uses, len = its maximum
}

// newLinearMemory allocates a mappedMemory. If the mapping fails (an address space limit, or
// strict overcommit, which ignores MAP_NORESERVE), the guest gets Go heap memory as by default.
func newLinearMemory(capBytes, maxBytes uint64) experimental.LinearMemory {
	size := (max(maxBytes, 1) + hugePage - 1) &^ (hugePage - 1)
	// One huge page more than needed, so an aligned start exists inside the mapping.
	region, err := unix.Mmap(-1, 0, int(size+hugePage), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return &heapMemory{buf: make([]byte, 0, capBytes), max: maxBytes}
	}
	off := 0
	if r := uintptr(unsafe.Pointer(unsafe.SliceData(region))) % hugePage; r != 0 {
		off = int(hugePage - r)
	}
	m := &mappedMemory{region: region, mem: region[off : off+int(maxBytes)]}
	_ = unix.Madvise(region[off:off+int(size)], unix.MADV_HUGEPAGE) // advice: failure changes nothing else
	return m
}

// Reallocate returns the first size bytes, or nil past the maximum (memory.grow then fails).
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.mem)) {
		return nil
	}
	return m.mem[:size:size]
}

// Free unmaps the memory. wazero calls it once, when the module is closed.
func (m *mappedMemory) Free() {
	_ = unix.Munmap(m.region)
	m.region, m.mem = nil, nil
}
