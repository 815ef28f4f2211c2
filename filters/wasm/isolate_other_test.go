//go:build !linux

package wasm

import (
	"strings"
	"testing"
)

// TestIsolationRefusedOffLinux: isolation = "request" is refused with a clear error where the
// snapshot cannot be made.
func TestIsolationRefusedOffLinux(t *testing.T) {
	_, _, err := tryFilter(t, "leak", false, func(c *Config) { c.Isolation = isolationRequest })
	if err == nil || !strings.Contains(err.Error(), `isolation = "request" needs Linux`) {
		t.Fatalf("err %v, want the mode refused as Linux-only", err)
	}
}
