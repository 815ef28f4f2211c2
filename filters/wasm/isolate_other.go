//go:build !linux

package wasm

import (
	"errors"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

var errIsolationUnsupported = errors.New(`isolation = "request" needs Linux (a sealed memfd mapped copy-on-write restores the guest's memory after each request); use isolation = "instance" on this platform`)

// isolationSupported reports whether this platform can isolate requests: only Linux can.
func isolationSupported() error { return errIsolationUnsupported }

// isolatedInstance exists for the build; build refuses the mode before any is made.
type isolatedInstance struct{}

func (s *isolatedInstance) allocator() experimental.MemoryAllocator { return nil }

func (s *isolatedInstance) snapshot(api.Module, int) error { return errIsolationUnsupported }

func (s *isolatedInstance) restore() bool { return false }
