package balancer_test

import (
	"os"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestCanaryExample serves examples/canary/gateway.hcl with its three upstreams replaced by test
// servers, and checks what its README promises: about 5% to v2, the cookie that keeps a client
// there, x-canary: 1 reaching v2.
func TestCanaryExample(t *testing.T) {
	src, err := os.ReadFile("../../examples/canary/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(src)
	for port, name := range map[string]string{"9101": "v1", "9102": "v2", "9103": "shadow"} {
		addr := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.Response.Header.Set("X-Upstream", name) })
		cfg = strings.Replace(cfg, "127.0.0.1:"+port, addr, 1)
	}
	gw := gatewaytest.Start(t, cfg)
	cl := gatewaytest.Client()
	do := func(headers ...string) (upstream, cookie string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(gw.URL + "/")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		if err := cl.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("%v: %d %v\n%s", headers, resp.StatusCode(), err, gw.Logs())
		}
		return string(resp.Header.Peek("X-Upstream")), string(resp.Header.Peek("Set-Cookie"))
	}
	const n = 1000
	count := map[string]int{}
	for range n {
		up, cookie := do()
		count[up]++
		if !strings.HasPrefix(cookie, "canary="+up+";") {
			t.Fatalf("answered by %q with Set-Cookie %q", up, cookie)
		}
	}
	// 5% of 1000 is 50, standard deviation 6.9: 20..85 is over 4 of them either side.
	if count["v2"] < 20 || count["v2"] > 85 || count["v1"]+count["v2"] != n {
		t.Errorf("split %v, want about 950/50", count)
	}
	if up, _ := do("x-canary", "1"); up != "v2" {
		t.Errorf("x-canary: 1 went to %q, want v2", up)
	}
	if up, cookie := do("Cookie", "canary=v2"); up != "v2" || cookie != "" {
		t.Errorf("canary=v2 went to %q (Set-Cookie %q), want v2 and no new cookie", up, cookie)
	}
}
