package engine_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// reloadConfigs returns two configurations that differ in filters and upstream targets.
func reloadConfigs(a1, a2, b1 string) [2]string {
	const tmpl = `
upstream "u" {
  %s
}
pipeline "p" {
  filter "headers" {
    response_set = { "X-Config" = %q }
  }
  %s
  balancer { upstream = upstream.u }
}
`
	return [2]string{
		fmt.Sprintf(tmpl, fmt.Sprintf("target { address = %q }\n  target { address = %q }", a1, a2), "A", ""),
		fmt.Sprintf(tmpl, fmt.Sprintf("target { address = %q }", b1), "B",
			`filter "headers" {
    request_set = { "X-Extra" = "1" }
  }`),
	}
}

// TestReloadUnderLoad reloads twenty times, alternating two configurations, while fifty clients
// keep sending requests: no request may fail, and every answer must come from one of the two.
func TestReloadUnderLoad(t *testing.T) {
	a1, a2, b1 := echoUpstream(t, "a1"), echoUpstream(t, "a2"), echoUpstream(t, "b1")
	cfgs := reloadConfigs(a1, a2, b1)
	gw := gatewaytest.Start(t, cfgs[0])

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
				if resp.StatusCode != 200 || !valid[cfg][up] {
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
	gw := gatewaytest.Start(t, cfgs[0])
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
