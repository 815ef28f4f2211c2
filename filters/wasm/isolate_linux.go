package wasm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"github.com/sluice-gateway/sluice/filters/wasm/interrupt"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// Per-request isolation (isolation = "request").
//
// Every instance of such a filter gets its linear memory from newLinearMemory, a mapping of its
// maximum size. Once its start function has run, snapshot copies the memory's contents into a
// sealed memfd of the mapping's size and maps that file MAP_PRIVATE|MAP_FIXED over the memory,
// at the same address, so the guest (and wazero, which keeps the slice) see no change. A write
// then copies the page it touches (copy-on-write); restore, after each request, copies the
// snapshot back over the pages written so far, or drops the used range with MADV_DONTNEED, after
// which the next access of a private file mapping reads the snapshot's page again. A reset costs
// a few system calls and a copy of the pages written, never of the whole memory. The seals make
// the snapshot immutable, whoever holds the file.
//
// The mutable globals (a Go guest's stack pointer, a C guest's __stack_pointer, a WAT guest's
// own) are exported by interrupt.ExportGlobals under reserved names; snapshot saves their values
// and restore sets them back. wazero cannot shrink a memory, so restore reports a request that
// grew it, and the instance is retired (release closes it and starts a fresh one).

// isolationSupported reports whether this platform can isolate requests.
func isolationSupported() error { return nil }

// isolatedInstance is an instance's snapshot: the memory it restores and the globals it resets.
type isolatedInstance struct {
	lm      *mappedMemory // the instance's memory mapping; nil if it could not be made
	mem     api.Memory
	size    uint32 // bytes of memory at the snapshot: the used range a reset drops
	globals []api.MutableGlobal
	saved   []uint64
	// snap is a read-only shared view of the snapshot's used range, what restore copies back
	// into written pages; entries is restore's buffer for their pagemap entries.
	snap    []byte
	entries []byte
}

// isolatedMemory is an isolated instance's memory: freeing it also unmaps the snapshot's view.
type isolatedMemory struct {
	*mappedMemory
	s *isolatedInstance
}

func (m *isolatedMemory) Free() {
	if m.s.snap != nil {
		_ = unix.Munmap(m.s.snap)
		m.s.snap = nil
	}
	m.mappedMemory.Free()
}

// allocator returns the memory allocator of one instance: a mapping, which it keeps for the
// snapshot.
func (s *isolatedInstance) allocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
		lm := newLinearMemory(capBytes, maxBytes)
		m, ok := lm.(*mappedMemory)
		if !ok {
			return lm // snapshot refuses it
		}
		s.lm = m
		return &isolatedMemory{mappedMemory: m, s: s}
	})
}

var zeroPage [4096]byte

// snapshot takes the state mod is in as the one every request starts from; globals is how many
// mutable globals interrupt.ExportGlobals exported.
func (s *isolatedInstance) snapshot(mod api.Module, globals int) error {
	if s.lm == nil {
		return errors.New("the guest's memory could not be mapped (address space limit or strict overcommit)")
	}
	mem := mod.Memory()
	size := mem.Size()
	buf, _ := mem.Read(0, size)
	if size > 0 && unsafe.SliceData(buf) != unsafe.SliceData(s.lm.mem) {
		return errors.New("the guest's memory is not the mapping Sluice allocated")
	}
	full := s.lm.mem
	fd, err := unix.MemfdCreate("sluice-wasm-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	// The mapping keeps the file alive.
	defer unix.Close(fd)
	// The file is as long as the mapping (memory_limit at most): a private mapping past the
	// end of its file would fault with SIGBUS where the guest grows.
	if err := unix.Ftruncate(fd, int64(len(full))); err != nil {
		return fmt.Errorf("sizing the snapshot: %w", err)
	}
	// Only the pages holding something are written: the others stay holes, which read as
	// zeros and take no memory.
	for off := 0; off < int(size); off += len(zeroPage) {
		page := buf[off:min(off+len(zeroPage), int(size))]
		if bytes.Equal(page, zeroPage[:len(page)]) {
			continue
		}
		if _, err := unix.Pwrite(fd, page, int64(off)); err != nil {
			return fmt.Errorf("writing the snapshot: %w", err)
		}
	}
	seals := unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("sealing the snapshot: %w", err)
	}
	if len(full) > 0 {
		// MAP_FIXED replaces the anonymous pages in place; nothing runs in the guest meanwhile.
		// MAP_NORESERVE, as for the anonymous mapping: a private writable mapping would
		// otherwise be charged its whole size (memory_limit) against overcommit.
		_, err := unix.MmapPtr(fd, 0, unsafe.Pointer(unsafe.SliceData(full)), uintptr(len(full)),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED|unix.MAP_NORESERVE)
		if err != nil {
			return fmt.Errorf("mapping the snapshot: %w", err)
		}
	}
	if size > 0 {
		// A read-only shared mapping of a write-sealed file is allowed.
		if s.snap, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return fmt.Errorf("mapping the snapshot: %w", err)
		}
	}
	s.mem, s.size = mem, size
	for i := range globals {
		g, ok := mod.ExportedGlobal(interrupt.GlobalPrefix + strconv.Itoa(i)).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("mutable global %d is not exported", i)
		}
		s.globals = append(s.globals, g)
		s.saved = append(s.saved, g.Get())
	}
	return nil
}

// restore puts the instance back in its snapshot's state. It returns false if it cannot: the
// request grew the memory, which wazero cannot shrink, so the instance must be retired.
//
// Pages the guest only read are still the snapshot's. Pages it wrote are private copies, which
// /proc/self/pagemap tells apart (anonymous, where a page read is a file page): up to
// maxCopyBack of them, restore copies the snapshot's contents back into them, and the next
// request, which likely writes the same pages (its stack, its heap's top), writes them without
// a fault; a page fault costs more than copying 4 KiB. Past that, or without pagemap, it drops
// the whole used range (MADV_DONTNEED), so that an instance does not copy the pages one large
// request wrote on every later request.
func (s *isolatedInstance) restore() bool {
	if s.mem.Size() != s.size {
		return false
	}
	if s.size > 0 && !s.copyBack() {
		if err := unix.Madvise(s.lm.mem[:s.size], unix.MADV_DONTNEED); err != nil {
			return false
		}
	}
	for i, g := range s.globals {
		g.Set(s.saved[i])
	}
	return true
}

// maxCopyBack is how many written pages restore copies back before it drops them instead.
const maxCopyBack = 64

// copyBack copies the snapshot over the pages written since the snapshot (see restore); false
// if it did not (pagemap unreadable, or more than maxCopyBack pages written).
func (s *isolatedInstance) copyBack() bool {
	pm := pagemap()
	if pm == nil {
		return false
	}
	used := s.lm.mem[:s.size]
	ps := os.Getpagesize()
	n := (len(used) + ps - 1) / ps
	if cap(s.entries) < 8*n {
		s.entries = make([]byte, 8*n)
	}
	entries := s.entries[:8*n]
	start := uintptr(unsafe.Pointer(unsafe.SliceData(used)))
	if k, err := pm.ReadAt(entries, int64(start/uintptr(ps)*8)); err != nil || k != len(entries) {
		return false
	}
	written := 0
	for i := range n {
		if writtenPage(binary.LittleEndian.Uint64(entries[8*i:])) {
			written++
		}
	}
	if written > maxCopyBack {
		return false
	}
	for i := range n {
		if writtenPage(binary.LittleEndian.Uint64(entries[8*i:])) {
			end := min((i+1)*ps, len(used))
			copy(used[i*ps:end], s.snap[i*ps:end])
		}
	}
	return true
}

// writtenPage reports whether a pagemap entry is a private copy: an anonymous page, present or
// swapped out.
func writtenPage(e uint64) bool {
	return e&pmSwapped != 0 || e&pmPresent != 0 && e&pmFile == 0
}

// pagemap is /proc/self/pagemap, opened once; nil if it cannot be read.
var pagemap = sync.OnceValue(func() *os.File {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	return f
})

// Bits of a /proc/self/pagemap entry.
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
	pmFile    = 1 << 61
)

// dirtyPages counts the pages of the used range that are private copies (see restore): after a
// request, the pages it wrote and those earlier requests wrote and restore copied back. For tests
// and benchmarks.
func (s *isolatedInstance) dirtyPages() (int, error) {
	pm := pagemap()
	if pm == nil {
		return 0, errors.New("/proc/self/pagemap cannot be read")
	}
	ps := os.Getpagesize()
	n := (int(s.size) + ps - 1) / ps
	entries := make([]byte, 8*n)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s.lm.mem)))
	if _, err := pm.ReadAt(entries, int64(start/uintptr(ps)*8)); err != nil {
		return 0, err
	}
	dirty := 0
	for i := range n {
		if writtenPage(binary.LittleEndian.Uint64(entries[8*i:])) {
			dirty++
		}
	}
	return dirty, nil
}
