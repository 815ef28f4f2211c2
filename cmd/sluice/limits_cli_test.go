package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateWarnsAboutUnlimited: turning a connection or slow-client limit off is allowed, and
// `sluice validate` says so at the attribute (exit 0); the defaults draw no warning.
func TestValidateWarnsAboutUnlimited(t *testing.T) {
	path := writeConfig(t, `server {
  max_connections             = 0
  max_conns_per_ip            = 0
  first_byte_timeout          = "0s"
  idle_timeout_under_pressure = "0s"
  held_response_budget        = 0
  min_write_rate              = 0
  read_timeout                = "0s"
  write_timeout               = "0s"
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`)
	out, err := exec.Command(sluiceBin, "validate", "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("validate failed: %v\n%s", err, out)
	}
	base := filepath.Base(path)
	for line, attr := range []string{"max_connections", "max_conns_per_ip", "first_byte_timeout", "idle_timeout_under_pressure", "held_response_budget", "min_write_rate", "read_timeout", "write_timeout"} {
		want := base + ":" + string(rune('2'+line)) + ":"
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), attr+": ") {
			t.Errorf("no warning about %s at %s…:\n%s", attr, want, out)
		}
	}
	if n := strings.Count(string(out), "warning: Unsafe setting"); n != 8 {
		t.Errorf("%d warnings, want 8:\n%s", n, out)
	}

	good := writeConfig(t, `upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`)
	out, err = exec.Command(sluiceBin, "validate", "-c", good).CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") {
		t.Errorf("the defaults: %v\n%s", err, out)
	}
}
