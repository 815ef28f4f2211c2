package main

import (
	"os/exec"
	"testing"
)

// TestForwardAuthExampleValidates: examples/forward-auth/gateway.hcl (what its run.sh serves) is
// a valid configuration without warnings.
func TestForwardAuthExampleValidates(t *testing.T) {
	out, err := exec.Command(sluiceBin, "validate", "-c", "../../examples/forward-auth/gateway.hcl").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice validate: %v\n%s", err, out)
	}
}
