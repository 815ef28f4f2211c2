package wasm_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-gateway/sluice/engine/admin"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestConfigRawEndToEnd: config_raw in HCL reaches the guest byte for byte; with config as well
// it is a diagnostic on config_raw's line.
func TestConfigRawEndToEnd(t *testing.T) {
	gw := gatewayWith(t, wasm.Guest(t, "goguest"), `    config_raw = "open sesame"`, tckBackend)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(gw.URL + "/")
	req.Header.Set("x-test", "config")
	if err := gatewaytest.Client().Do(req, resp); err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Body()); got != "open sesame" {
		t.Errorf("the guest's config is %q, want %q", got, "open sesame")
	}

	src := `pipeline "p" {
  match {
    path_prefix = "/"
  }
  filter "wasm" {
    module     = "x.wasm"
    config     = { a = 1 }
    config_raw = "open sesame"
  }
}
`
	_, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if !diags.HasErrors() {
		t.Fatal("config and config_raw together loaded without a diagnostic")
	}
	text := diags.Error()
	if !strings.Contains(text, "config_raw") || !strings.Contains(text, ":8,") {
		t.Errorf("diagnostic %q does not point at config_raw (line 8)", text)
	}
}

// TestReloadUnderLoadGoGuest reloads a gateway four times between two builds of the Go guest
// (with and without a timeout, so different compiled code) while eight clients keep sending
// requests through a filter with pool_max = 4: every request gets 200. The new configuration
// takes over a pool as warm as the old one's, and the return to a module compiles nothing.
func TestReloadUnderLoadGoGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the Go guest with the interrupt checks")
	}
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	cfg := func(extra string) string {
		return fmt.Sprintf(`
upstream "u" {
  target {
    address = %q
  }
}
pipeline "all" {
  match {
    path_prefix = "/"
  }
  filter "wasm" {
    name     = "go"
    module   = %q
    pool_max = 4
    # A loaded 2-core machine can hold a request up beyond the default 50ms whether or not a
    # reload happens; a cold pool after the swap would make requests wait for Go runtimes to start.
    pool_wait = "500ms"
%s
  }
  balancer {
    upstream = upstream.u
  }
}
`, up, wasm.Guest(t, "goguest"), extra)
	}
	gw := gatewaytest.Start(t, cfg(""))
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	for range 8 {
		wg.Go(func() {
			cl := gatewaytest.Client()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(gw.URL + "/")
			for !stop.Load() {
				status := 0
				if err := cl.Do(req, resp); err == nil {
					status = resp.StatusCode()
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	var compiled float64
	for i, extra := range []string{`    timeout = "1s"`, ``, `    timeout = "1s"`, ``} {
		if i == 2 {
			compiled = compilations(t)
		}
		<-gw.Reload(t, cfg(extra))
	}
	if n := compilations(t) - compiled; n != 0 {
		t.Errorf("reloading back to modules used before compiled %v modules, want 0", n)
	}
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range statuses {
		total += n
	}
	t.Logf("%d requests over four reloads: %v", total, statuses)
	if statuses[200] != total || total < 100 {
		t.Errorf("statuses %v, want only 200 (and at least 100 requests)", statuses)
		for _, line := range strings.Split(gw.Logs(), "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				t.Log(line)
			}
		}
	}
}

// compilations reads sluice_wasm_compilations_total.
func compilations(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "sluice_wasm_compilations_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no sluice_wasm_compilations_total metric")
	return 0
}

// TestConfigRawRedacted: /config shows a Wasm filter's config_raw as [redacted].
func TestConfigRawRedacted(t *testing.T) {
	gw := gatewayWith(t, wasm.Guest(t, "goguest"), `    config_raw = "open sesame"`, tckBackend)
	// One request first: stopping a gateway whose Serve has not begun yet can hang (gatewaytest).
	if status, _, err := gatewaytest.Client().Get(nil, gw.URL+"/"); err != nil || status != 200 {
		t.Fatalf("GET /: %d %v", status, err)
	}
	b, err := json.Marshal(admin.Redact(gw.Server.Gateway().Spec))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "open sesame") || !strings.Contains(string(b), `"config_raw":"[redacted]"`) {
		t.Errorf("/config shows config_raw: %s", b)
	}
}
