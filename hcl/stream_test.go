package hcl

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/filters"
)

// TestStreamTimeoutAttribute: stream_timeout defaults to 1h, decodes, warns at the attribute when
// turned off (0) and refuses a negative value; an upstream's stream_responses decodes.
func TestStreamTimeoutAttribute(t *testing.T) {
	cfg, diags := Load("gateway.hcl", []byte(limitsTail), filters.Builtin())
	if len(diags) > 0 {
		t.Fatalf("defaults: %v", diags)
	}
	if d := cfg.Spec.Server.StreamTimeout.D(); d != time.Hour {
		t.Errorf("default stream_timeout %v, want 1h", d)
	}
	cfg, diags = Load("gateway.hcl", []byte(`server {
  stream_timeout = "10m"
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
  stream_responses = true
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`), filters.Builtin())
	if len(diags) > 0 {
		t.Fatalf("set: %v", diags)
	}
	if d := cfg.Spec.Server.StreamTimeout.D(); d != 10*time.Minute {
		t.Errorf("stream_timeout %v, want 10m", d)
	}
	_, diags = Load("gateway.hcl", []byte(`server {
  stream_timeout = "0s"
}`+limitsTail), filters.Builtin())
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Subject.Start.Line != 2 ||
		!strings.Contains(diags[0].Detail, "stream_timeout: 0 means no limit") {
		t.Errorf("stream_timeout = 0: %v", diags)
	}
	_, diags = Load("gateway.hcl", []byte(`server {
  stream_timeout = "-1s"
}`+limitsTail), filters.Builtin())
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "stream_timeout") {
		t.Errorf("stream_timeout = -1s: %v", diags)
	}
}
