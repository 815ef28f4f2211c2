package wasm_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"testing"

	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestLoadThroughput compares the gateway's throughput on two pipelines of one gateway, alike
// but for a wasm filter running the bench guest (five host calls per request, no timeout). It
// drives them with wrk, alternating rounds, and wants the wasm pipeline's best round within 15%
// of the plain one's. It is a load test: it runs only with SLUICE_LOAD_TEST=1 (and needs wrk).
func TestLoadThroughput(t *testing.T) {
	if os.Getenv("SLUICE_LOAD_TEST") == "" {
		t.Skip("set SLUICE_LOAD_TEST=1 to run the load test")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed")
	}
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target {
    address = %q
  }
}
pipeline "plain" {
  match {
    path_prefix = "/plain/"
  }
  balancer {
    upstream = upstream.u
  }
}
pipeline "wasm" {
  match {
    path_prefix = "/wasm/"
  }
  filter "wasm" {
    name     = "bench"
    module   = %q
    pool_min = 4
  }
  balancer {
    upstream = upstream.u
  }
}
`, up, wasm.Guest(t, "bench")))
	rps := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	run := func(path string) float64 {
		out, err := exec.Command(wrk, "-t1", "-c32", "-d2s", "-H", "x-id: load", gw.URL+path).CombinedOutput()
		if err != nil {
			t.Fatalf("wrk: %v\n%s", err, out)
		}
		m := rps.FindSubmatch(out)
		if m == nil {
			t.Fatalf("no Requests/sec in wrk output:\n%s", out)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	run("/plain/warm")
	run("/wasm/warm")
	// Other work on the machine only ever slows a round down, so compare the best rounds.
	var plain, withWasm []float64
	for range 5 {
		plain = append(plain, run("/plain/x"))
		withWasm = append(withWasm, run("/wasm/x"))
	}
	sort.Float64s(plain)
	sort.Float64s(withWasm)
	p, w := plain[len(plain)-1], withWasm[len(withWasm)-1]
	t.Logf("best requests/s: plain %.0f, with the wasm filter %.0f (%.1f%%); rounds plain %v wasm %v", p, w, 100*w/p, plain, withWasm)
	if w < 0.85*p {
		t.Errorf("the wasm pipeline serves %.0f req/s, less than 85%% of the plain pipeline's %.0f", w, p)
	}
}
