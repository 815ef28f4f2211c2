package wasm

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestUsageMetrics checks the pool gauges: after a request the instance is idle again, none is
// in use, and the guests' linear memory is counted.
func TestUsageMetrics(t *testing.T) {
	f, _ := newFilter(t, "bench", nil)
	do(t, f, "GET", "/x", "")
	pipeline, label, _ := strings.Cut(f.slot, "\x00")
	want := func(name string) float64 {
		t.Helper()
		return gaugeOf(t, name, pipeline, label)
	}
	if got := want("sluice_wasm_instances_idle"); got < 1 {
		t.Errorf("idle instances %v, want at least 1", got)
	}
	if got := want("sluice_wasm_instances_in_use"); got != 0 {
		t.Errorf("instances in use %v, want 0", got)
	}
	if got := want("sluice_wasm_memory_bytes"); got < 65536 {
		t.Errorf("memory %v bytes, want at least one page", got)
	}
}

// gaugeOf reads one series of the usage collector.
func gaugeOf(t *testing.T, name, pipeline, label string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(usage); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			var p, l string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "pipeline":
					p = lp.GetValue()
				case "filter":
					l = lp.GetValue()
				}
			}
			if p == pipeline && l == label {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{pipeline=%q,filter=%q}", name, pipeline, label)
	return 0
}
