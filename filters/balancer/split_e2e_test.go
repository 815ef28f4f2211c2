package balancer_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	sluicehcl "github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestSplitFromHCL runs a canary pipeline from HCL: a 90/10 split between two upstreams, sticky
// by cookie, with x-canary: 1 going to v2 whatever the split says.
func TestSplitFromHCL(t *testing.T) {
	named := func(name string) string {
		return gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString(name) })
	}
	v1, v2 := named("v1"), named("v2")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "v1" {
  target {
    address = %q
  }
}
upstream "v2" {
  target {
    address = %q
  }
}
pipeline "app" {
  match {
    path_prefix = "/"
  }
  balancer {
    split {
      upstream = upstream.v1
      weight   = 90
    }
    split {
      upstream = upstream.v2
      weight   = 10
    }
    sticky {
      cookie = "canary"
    }
    route_header {
      name     = "x-canary"
      value    = "1"
      upstream = upstream.v2
    }
  }
}
`, v1, v2))
	cl := gatewaytest.Client()
	do := func(headers ...string) (body, setCookie string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(gw.URL + "/x")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		if err := cl.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("%v: %d %v", headers, resp.StatusCode(), err)
		}
		return string(resp.Body()), string(resp.Header.Peek("Set-Cookie"))
	}
	const n = 400
	count := map[string]int{}
	for range n {
		body, sc := do()
		count[body]++
		if !strings.HasPrefix(sc, "canary="+body+";") {
			t.Fatalf("answered by %s with Set-Cookie %q: want canary=%s", body, sc, body)
		}
	}
	// 10% of 400 is 40; a binomial's 5 standard deviations either side is 10 to 70.
	if count["v2"] < 10 || count["v2"] > 70 || count["v1"]+count["v2"] != n {
		t.Errorf("split %v, want about 360/40", count)
	}
	for range 20 {
		if body, sc := do("Cookie", "canary=v2"); body != "v2" || sc != "" {
			t.Fatalf("with canary=v2: %s, Set-Cookie %q; want v2 and no new cookie", body, sc)
		}
		if body, _ := do("X-Canary", "1", "Cookie", "canary=v1"); body != "v2" {
			t.Fatalf("x-canary: 1: answered by %s, want v2", body)
		}
	}
}

// TestSplitConfigErrors: a split's mistakes are reported at the attribute.
func TestSplitConfigErrors(t *testing.T) {
	for _, tc := range []struct{ balancer, want string }{
		{"split {\n upstream = upstream.u\n weight = 0\n }", "add up to 0"},
		{"upstream = upstream.u\n sticky {\n cookie = \"c\"\n }", "sticky applies to a split"},
		{"upstream = upstream.u\n route_header {\n name = \"x-a\"\n upstream = upstream.nope\n }", "nope"},
	} {
		_, diags := loadHCL(t, fmt.Sprintf(`
upstream "u" {
  target {
    address = "127.0.0.1:1"
  }
}
pipeline "app" {
  balancer {
    %s
  }
}
`, tc.balancer))
		if !diags.HasErrors() || !strings.Contains(strings.ToLower(diags.Error()), strings.ToLower(tc.want)) {
			t.Errorf("%q: %v, want an error saying %q", tc.balancer, diags, tc.want)
		}
	}
}

// loadHCL loads src, and builds it (validating only) when it loads.
func loadHCL(t *testing.T, src string) (*sluicehcl.Config, hcl.Diagnostics) {
	cfg, diags := sluicehcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		return cfg, diags
	}
	gw, bd := cfg.Build(engine.BuildOptions{Validating: true})
	if gw != nil {
		gw.Close()
	}
	return cfg, append(diags, bd...)
}

// TestSplitFailureLogNamesChosenUpstream: a 5xx of the upstream a split chose is logged under
// that upstream's name, not the pipeline's first.
func TestSplitFailureLogNamesChosenUpstream(t *testing.T) {
	ok := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "v1" {
  target {
    address = %q
  }
}
upstream "broken" {
  target {
    address = "127.0.0.1:1"
  }
}
pipeline "app" {
  balancer {
    split {
      upstream = upstream.v1
      weight   = 0
    }
    split {
      upstream = upstream.broken
      weight   = 1
    }
  }
}
`, ok))
	if code, _, err := get(t, gatewaytest.Client(), gw.URL+"/x"); err != nil || code != 502 {
		t.Fatalf("%d %v, want 502 from the broken upstream", code, err)
	}
	waitFor(t, 5*time.Second, "the failure log line", func() bool { return strings.Contains(gw.Logs(), "upstream=broken") })
}
