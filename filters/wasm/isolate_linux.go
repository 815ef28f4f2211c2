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
// then copies the page it touches (copy-on-write); restore, after each request, drops the used
// range with MADV_DONTNEED, and the next access of a private file mapping reads the snapshot's
// page again. A reset costs a system call plus, in the next request, a page fault per page it
// writes (and per 16 pages it reads: fault-around), not a copy of the memory. The seals make the
// snapshot immutable, whoever holds the file.
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
}

// allocator returns the memory allocator of one instance: a mapping, which it keeps for the
// snapshot.
func (s *isolatedInstance) allocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
		lm := newLinearMemory(capBytes, maxBytes)
		s.lm, _ = lm.(*mappedMemory)
		return lm
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
		_, err := unix.MmapPtr(fd, 0, unsafe.Pointer(unsafe.SliceData(full)), uintptr(len(full)),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
		if err != nil {
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
// The whole used range is dropped, the pages only read included: telling the written ones
// apart (from /proc/self/pagemap) cost more than it saved, measured on the Go guest (a read of
// its 784 page entries plus a madvise per run of written pages, against one madvise; fault-around
// maps read pages back 16 at a time).
func (s *isolatedInstance) restore() bool {
	if s.mem.Size() != s.size {
		return false
	}
	if s.size > 0 {
		if err := unix.Madvise(s.lm.mem[:s.size], unix.MADV_DONTNEED); err != nil {
			return false
		}
	}
	for i, g := range s.globals {
		g.Set(s.saved[i])
	}
	return true
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

// dirtyPages counts the pages of the used range written since the last restore: a page a private
// file mapping copied on write is anonymous (the "file-page" bit clear) and present or swapped;
// a page only read is still the snapshot's. For tests and benchmarks.
func (s *isolatedInstance) dirtyPages() (int, error) {
	ps := os.Getpagesize()
	n := (int(s.size) + ps - 1) / ps
	entries := make([]byte, 8*n)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s.lm.mem)))
	pm := pagemap()
	if pm == nil {
		return 0, errors.New("/proc/self/pagemap cannot be read")
	}
	if _, err := pm.ReadAt(entries, int64(start/uintptr(ps)*8)); err != nil {
		return 0, err
	}
	dirty := 0
	for i := range n {
		e := binary.LittleEndian.Uint64(entries[8*i:])
		if e&pmSwapped != 0 || e&pmPresent != 0 && e&pmFile == 0 {
			dirty++
		}
	}
	return dirty, nil
}
