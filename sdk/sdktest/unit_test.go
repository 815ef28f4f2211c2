package sdktest_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sluice-gateway/sluice/sdk/sdktest"
)

// TestSDKUnitTests runs each SDK's own unit tests in its own language (`make -C sdk test`): Go
// and Go examples with go test, Rust with rustc --test, C natively against sluice_fakehost.c,
// AssemblyScript with node against testing/fakehost.mjs.
func TestSDKUnitTests(t *testing.T) {
	if missing := sdktest.MissingToolchains(); len(missing) > 0 {
		t.Fatalf("guest toolchains missing: %v", missing)
	}
	out, err := exec.Command("make", "-C", filepath.Join(sdktest.Root(), "sdk"), "test").CombinedOutput()
	if err != nil {
		t.Fatalf("make -C sdk test: %v\n%s", err, out)
	}
}
