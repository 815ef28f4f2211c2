//go:build !linux

package wasm

import "github.com/tetratelabs/wazero/experimental"

// memoryAllocatorFor returns nil, wazero's default linear memory: transparent huge pages, the
// reason for an allocator of our own (linearmem_linux.go), are Linux's.
func memoryAllocatorFor(uint64) experimental.MemoryAllocator { return nil }
