package balancer_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/balancer"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestSlowTargetShare sends the same bounded load through each policy to three targets, one of
// them 50 ms slower, and reports the share of requests the slow one got and the latencies.
// p2c_ewma must send it markedly less than round_robin.
func TestSlowTargetShare(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	handler := func(name string, delay time.Duration) fasthttp.RequestHandler {
		return func(c *fasthttp.RequestCtx) {
			time.Sleep(delay)
			c.SetBodyString(name)
		}
	}
	addrs := []string{
		gatewaytest.Upstream(t, handler("fast1", time.Millisecond)),
		gatewaytest.Upstream(t, handler("slow", 51*time.Millisecond)),
		gatewaytest.Upstream(t, handler("fast2", time.Millisecond)),
	}
	const workers, requests = 8, 600
	share := map[string]float64{}
	var report []string
	for _, policy := range balancer.Policies {
		gw := gatewaytest.Start(t, config("", addrs, fmt.Sprintf("policy = %q", policy)))
		var mu sync.Mutex
		var lat []time.Duration
		slow := 0
		var wg sync.WaitGroup
		next := make(chan struct{}, requests)
		for i := 0; i < requests; i++ {
			next <- struct{}{}
		}
		close(next)
		start := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := gatewaytest.Client()
				for range next {
					t0 := time.Now()
					code, body, err := get(t, cl, gw.URL+"/x")
					d := time.Since(t0)
					if err != nil || code != 200 {
						t.Errorf("%s: %d %v", policy, code, err)
						return
					}
					mu.Lock()
					lat = append(lat, d)
					if string(body) == "slow" {
						slow++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		gw.Stop(t)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(100 * time.Microsecond) }
		share[policy] = float64(slow) / float64(len(lat))
		report = append(report, fmt.Sprintf("%-21s slow share %5.1f%%  p50 %-8v p90 %-8v p99 %-8v  %4.0f req/s",
			policy, 100*share[policy], q(0.5), q(0.9), q(0.99), float64(len(lat))/el.Seconds()))
	}
	t.Logf("one of three targets +50ms, %d requests, %d concurrent:\n%s", requests, workers, strings.Join(report, "\n"))
	if share["p2c_ewma"] > share["round_robin"]/3 {
		t.Errorf("p2c_ewma sent %.1f%% to the slow target, round_robin %.1f%%: want markedly less", 100*share["p2c_ewma"], 100*share["round_robin"])
	}
	if share["least_request"] >= share["round_robin"] {
		t.Errorf("least_request sent %.1f%% to the slow target, round_robin %.1f%%: want less", 100*share["least_request"], 100*share["round_robin"])
	}
}
