package admin_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// TestDashboardFailuresByReasonAndWasmPool drives a real connection failure (a target whose
// port is closed) and a Wasm filter, then reads /api/v1/upstreams' failures by reason and
// /api/v1/wasm's instances in use, idle and memory.
func TestDashboardFailuresByReasonAndWasmPool(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Fatal("wat2wasm not found: install the Debian package wabt")
	}
	module := filepath.Join(t.TempDir(), "secheaders.wasm")
	if out, err := exec.Command("wat2wasm", "../../examples/filters/wat/secheaders.wat", "-o", module).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	// A port that was listening and is not any more: connections to it are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "ok"}).Handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "down" {
  target { address = %q }
}
upstream "ok" {
  target { address = %q }
}
pipeline "down" {
  match { path_prefix = "/down/" }
  balancer { upstream = upstream.down }
}
pipeline "wasm" {
  filter "wasm" {
    name   = "secheaders"
    module = %q
  }
  balancer { upstream = upstream.ok }
}
`, refused, up, module))
	base := startAdmin(t, gw, nil)
	for _, path := range []string{"/down/x", "/w"} {
		resp, err := http.Get(gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if path == "/down/x" && resp.StatusCode < 500 {
			t.Fatalf("GET %s through a refusing target: %d, want a 5xx", path, resp.StatusCode)
		}
	}

	// The counters are sampled once a second: poll until the failure shows.
	type target struct {
		Address  string            `json:"address"`
		Total    map[string]uint64 `json:"failures_by_reason"`
		Window   map[string]uint64 `json:"failures_by_reason_window"`
		Ejection map[string]uint64 `json:"ejections_by_reason"`
	}
	var ups []struct {
		Name          string `json:"name"`
		WindowSeconds int    `json:"window_seconds"`
		Status        struct {
			Targets []target `json:"targets"`
		} `json:"status"`
	}
	var body string
	var down, ok *target
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body = do(t, noRedirect, "GET", base+"/api/v1/upstreams", nil, "")
		if err := json.Unmarshal([]byte(body), &ups); err != nil {
			t.Fatalf("upstreams: %v: %s", err, body)
		}
		down, ok = nil, nil
		for i := range ups {
			if len(ups[i].Status.Targets) != 1 {
				t.Fatalf("upstream %s: targets %+v", ups[i].Name, ups[i].Status.Targets)
			}
			switch ups[i].Name {
			case "down":
				down = &ups[i].Status.Targets[0]
			case "ok":
				ok = &ups[i].Status.Targets[0]
			}
		}
		if down == nil || ok == nil {
			t.Fatalf("upstreams = %s", body)
		}
		if down.Total["connect_refused"] >= 1 && down.Window["connect_refused"] >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if down.Address != refused || down.Total["connect_refused"] < 1 || down.Window["connect_refused"] < 1 || down.Ejection == nil {
		t.Errorf("the refusing target: %+v (upstreams %s)", *down, body)
	}
	if len(ok.Total) != 0 || ok.Window == nil || ups[0].WindowSeconds != 10 {
		t.Errorf("the serving target: %+v, window %d s", *ok, ups[0].WindowSeconds)
	}

	_, body = do(t, noRedirect, "GET", base+"/api/v1/wasm", nil, "")
	var rows []struct {
		Pipeline string             `json:"pipeline"`
		Filter   string             `json:"filter"`
		Metrics  map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(body), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("wasm = %s (%v)", body, err)
	}
	m := rows[0].Metrics
	for _, k := range []string{"instances_in_use", "instances_idle", "memory_bytes"} {
		if _, has := m[k]; !has {
			t.Errorf("wasm metrics lack %s: %s", k, body)
		}
	}
	// The request is done: its instance is back in the pool, with the guest's one page (64 KiB).
	if m["instances_in_use"] != 0 || m["instances_idle"] < 1 || m["memory_bytes"] < 65536 {
		t.Errorf("wasm pool: in use %v, idle %v, memory %v bytes", m["instances_in_use"], m["instances_idle"], m["memory_bytes"])
	}
}
