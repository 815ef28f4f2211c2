package engine_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// reloadConfigs returns two configurations that differ in filters, Wasm modules and upstream
// targets. They load Wasm modules a.wasm and b.wasm from the gateway's folder (see wasmModules).
func reloadConfigs(a1, a2, b1 string) [2]string {
	const tmpl = `
upstream "u" {
  %s
}
pipeline "p" {
  filter "headers" {
    response_set = { "X-Config" = %q }
  }
  filter "wasm" {
    name     = "sec"
    module   = %q
    pool_max = 64
  }
  %s
  balancer { upstream = upstream.u }
}
`
	return [2]string{
		fmt.Sprintf(tmpl, fmt.Sprintf("target { address = %q }\n  target { address = %q }", a1, a2), "A", "a.wasm", ""),
		fmt.Sprintf(tmpl, fmt.Sprintf("target { address = %q }", b1), "B", "b.wasm",
			`filter "headers" {
    request_set = { "X-Extra" = "1" }
  }`),
	}
}

// wasmModules compiles the WAT example filter twice into dir, as a.wasm and b.wasm: b gets an
// extra unused function, so the two differ byte for byte and a reload between them really swaps
// compiled modules.
func wasmModules(t *testing.T, dir string) {
	t.Helper()
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install the Debian package wabt")
	}
	src, err := os.ReadFile("../examples/filters/wat/secheaders.wat")
	if err != nil {
		t.Fatal(err)
	}
	trimmed := bytes.TrimRight(src, " \t\n")
	if len(trimmed) == 0 || trimmed[len(trimmed)-1] != ')' {
		t.Fatal("secheaders.wat does not end its module with ')'")
	}
	b := append(append([]byte{}, trimmed[:len(trimmed)-1]...), []byte("\n  (func $reload_marker_b)\n)\n")...)
	for name, text := range map[string][]byte{"a": src, "b": b} {
		watPath := filepath.Join(dir, name+".wat")
		if err := os.WriteFile(watPath, text, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(wat2wasm, watPath, "-o", filepath.Join(dir, name+".wasm")).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm: %v\n%s", err, out)
		}
	}
}

// TestReloadUnderLoad reloads twenty times, alternating two configurations, while fifty clients
// keep sending requests: no request may fail, and every answer must come from one of the two.
func TestReloadUnderLoad(t *testing.T) {
	a1, a2, b1 := echoUpstream(t, "a1"), echoUpstream(t, "a2"), echoUpstream(t, "b1")
	cfgs := reloadConfigs(a1, a2, b1)
	dir := t.TempDir()
	wasmModules(t, dir)
	gw := gatewaytest.StartWith(t, cfgs[0], gatewaytest.Options{Dir: dir})

	valid := map[string]map[string]bool{"A": {"a1": true, "a2": true}, "B": {"b1": true}}
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Second}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 100000; n++ { // bounded; stop ends it far sooner
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(gw.URL + "/x")
				if err != nil {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cfg, up := resp.Header.Get("X-Config"), resp.Header.Get("X-Upstream")
				if resp.StatusCode != 200 || !valid[cfg][up] || resp.Header.Get("X-Frame-Options") != "DENY" {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("status %d config %q upstream %q", resp.StatusCode, cfg, up))
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		time.Sleep(100 * time.Millisecond)
		<-gw.Reload(t, cfgs[i%2])
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", failed.Load(), failed.Load()+ok.Load(), failures[:min(len(failures), 5)])
	}
	if ok.Load() < 500 {
		t.Errorf("only %d requests completed: the load loop did not run", ok.Load())
	}
	t.Logf("%d requests, 0 failed, across 20 reloads", ok.Load())
}

// TestReloadDoesNotLeak reloads 200 times and checks goroutines and heap return to baseline.
func TestReloadDoesNotLeak(t *testing.T) {
	a1, a2, b1 := echoUpstream(t, "a1"), echoUpstream(t, "a2"), echoUpstream(t, "b1")
	cfgs := reloadConfigs(a1, a2, b1)
	dir := t.TempDir()
	wasmModules(t, dir)
	gw := gatewaytest.StartWith(t, cfgs[0], gatewaytest.Options{Dir: dir})
	hit := func() {
		resp, err := http.Get(gw.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	measure := func() (int, uint64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	for i := 0; i < 10; i++ { // warm up pools and caches
		<-gw.Reload(t, cfgs[i%2])
		hit()
	}
	g0, h0 := measure()
	for i := 0; i < 200; i++ {
		<-gw.Reload(t, cfgs[i%2])
		hit()
	}
	http.DefaultClient.CloseIdleConnections()
	// Retired configurations' idle upstream connections close after the pools' idle timeout
	// (seconds), and their cleaner goroutines with them: wait for that, bounded.
	g1, h1 := measure()
	for deadline := time.Now().Add(15 * time.Second); g1 > g0+5 && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		g1, h1 = measure()
	}
	t.Logf("goroutines %d -> %d, heap %d KiB -> %d KiB", g0, g1, h0>>10, h1>>10)
	if g1 > g0+5 {
		t.Errorf("goroutines grew from %d to %d across 200 reloads", g0, g1)
	}
	if h1 > h0+8<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB across 200 reloads", h0>>10, h1>>10)
	}
}
