package hcl

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/filters"
)

const limitsTail = `
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`

// TestConnectionLimitAttributes: the connection and slow-client limits decode, default to finite
// values, warn at the attribute when turned off (0), and refuse negative values.
func TestConnectionLimitAttributes(t *testing.T) {
	cfg, diags := Load("gateway.hcl", []byte(limitsTail), filters.Builtin())
	if len(diags) > 0 {
		t.Fatalf("defaults: %v", diags)
	}
	s := cfg.Spec.Server
	if s.MaxConnsPerIP != 256 || s.FirstByteTimeout.D() != 10*time.Second || s.IdleTimeoutUnderPressure.D() != 5*time.Second ||
		s.HeldResponseBudget != 256<<20 || s.MinWriteRate != 1<<10 || s.MinWriteRateWindow.D() != 10*time.Second {
		t.Errorf("defaults: %+v", s)
	}

	cfg, diags = Load("gateway.hcl", []byte(`server {
  max_conns_per_ip            = 8
  first_byte_timeout          = "2s"
  idle_timeout_under_pressure = "1s"
  held_response_budget        = "1GiB"
  min_write_rate              = "4KiB"
  min_write_rate_window       = "5s"
}`+limitsTail), filters.Builtin())
	if len(diags) > 0 {
		t.Fatalf("set: %v", diags)
	}
	s = cfg.Spec.Server
	if s.MaxConnsPerIP != 8 || s.FirstByteTimeout.D() != 2*time.Second || s.IdleTimeoutUnderPressure.D() != time.Second ||
		s.HeldResponseBudget != 1<<30 || s.MinWriteRate != 4<<10 || s.MinWriteRateWindow.D() != 5*time.Second {
		t.Errorf("set: %+v", s)
	}

	_, diags = Load("gateway.hcl", []byte(`server {
  max_conns_per_ip = 0
}`+limitsTail), filters.Builtin())
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Subject.Start.Line != 2 ||
		!strings.Contains(diags[0].Detail, "max_conns_per_ip: 0 means unlimited") {
		t.Errorf("max_conns_per_ip = 0: %v", diags)
	}

	_, diags = Load("gateway.hcl", []byte(`server {
  min_write_rate        = "1KiB"
  min_write_rate_window = "100ms"
  max_conns_per_ip      = -1
}`+limitsTail), filters.Builtin())
	if !diags.HasErrors() || len(diags.Errs()) != 2 {
		t.Errorf("a window under 1s and a negative cap: %v", diags)
	}
}
