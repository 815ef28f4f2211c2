package engine_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// getWith sends a GET with extra headers (name, value pairs) and returns the status, the
// upstream's echo name and the response's headers.
func getWith(t *testing.T, url string, headers ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e upstream.Echo
	_ = json.Unmarshal(body, &e)
	name := e.Name
	return resp.StatusCode, name, resp.Header
}

// TestMatchPredicatesE2E routes through a real gateway on headers, cookies, query parameters,
// a path regex and hosts, in the documented precedence.
func TestMatchPredicatesE2E(t *testing.T) {
	up := map[string]string{}
	var blocks strings.Builder
	for _, n := range []string{"stable", "canary", "beta", "debug", "versioned", "shop", "wild"} {
		up[n] = echoUpstream(t, n)
		fmt.Fprintf(&blocks, "upstream %q {\n  target { address = %q }\n}\n", n, up[n])
	}
	gw := gatewaytest.Start(t, blocks.String()+`
pipeline "stable" {
  match { path_prefix = "/api/" }
  balancer { upstream = upstream.stable }
}
pipeline "canary" {
  match {
    path_prefix = "/api/"
    header "X-Canary" { exact = "1" }
  }
  balancer { upstream = upstream.canary }
}
pipeline "beta" {
  match {
    path_prefix = "/api/"
    header "x-canary" { prefix = "1" }
    cookie "beta" { present = true }
  }
  balancer { upstream = upstream.beta }
}
pipeline "debug" {
  match {
    path_prefix = "/api/"
    query "debug" { regex = "^(1|true)$" }
    header "authorization" { present = false }
  }
  balancer { upstream = upstream.debug }
}
pipeline "versioned" {
  match {
    path_prefix = "/api/"
    path_regex  = "^/api/v[0-9]+/"
  }
  balancer { upstream = upstream.versioned }
}
pipeline "shop" {
  match { hosts = ["shop.example.com"] }
  balancer { upstream = upstream.shop }
}
pipeline "wild" {
  match { hosts = ["*.example.com"] }
  balancer { upstream = upstream.wild }
}
`)
	for _, tc := range []struct {
		name    string
		path    string
		headers []string
		want    string
	}{
		{"no predicate", "/api/x", nil, "stable"},
		{"header exact", "/api/x", []string{"X-Canary", "1"}, "canary"},
		{"header exact misses", "/api/x", []string{"X-Canary", "10"}, "stable"},
		{"two predicates beat one", "/api/x", []string{"X-Canary", "1", "Cookie", "a=1; beta=yes"}, "beta"},
		{"query regex and absent header", "/api/x?debug=true", nil, "debug"},
		{"absent header present", "/api/x?debug=true", []string{"Authorization", "Bearer x"}, "stable"},
		{"path regex beats predicates", "/api/v2/x", []string{"X-Canary", "1"}, "versioned"},
		{"exact host beats the longer prefix", "/api/x", []string{"Host", "shop.example.com"}, "shop"},
		{"wildcard host", "/api/x", []string{"Host", "www.example.com"}, "wild"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, got, _ := getWith(t, gw.URL+tc.path, tc.headers...)
			if status != 200 || got != tc.want {
				t.Errorf("%s: status %d from %q, want 200 from %q", tc.path, status, got, tc.want)
			}
		})
	}
	if status, _, _ := getWith(t, gw.URL+"/other"); status != 404 {
		t.Errorf("unmatched path: status %d, want 404", status)
	}
}

// TestRouteTerminalE2E: a pipeline ends in route; a headers filter sets a header, routing runs
// again, and the pipeline matching that header serves with its own filters; the response
// phases of both pipelines run. A loop is stopped with 508 and a log line.
func TestRouteTerminalE2E(t *testing.T) {
	a, b := echoUpstream(t, "a"), echoUpstream(t, "b")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "a" {
  target { address = %q }
}
upstream "b" {
  target { address = %q }
}
pipeline "entry" {
  match { path_prefix = "/shop/" }
  filter "headers" {
    request_set  = { "X-Variant" = "b" }
    response_set = { "X-Entry" = "ran" }
  }
  route {}
}
pipeline "variant-b" {
  match {
    path_prefix = "/shop/"
    routed_only = true
    header "x-variant" { exact = "b" }
  }
  filter "headers" {
    response_set = { "X-Variant-Filter" = "b" }
  }
  balancer { upstream = upstream.b }
}
pipeline "variant-a" {
  match {
    path_prefix = "/shop/"
    routed_only = true
    header "x-variant" { exact = "a" }
  }
  balancer { upstream = upstream.a }
}
pipeline "loop" {
  match { path_prefix = "/loop/" }
  route { max_hops = 3 }
}
`, a, b))
	status, got, h := getWith(t, gw.URL+"/shop/cart")
	if status != 200 || got != "b" {
		t.Fatalf("routed request: status %d from %q, want 200 from b", status, got)
	}
	if h.Get("X-Entry") != "ran" || h.Get("X-Variant-Filter") != "b" {
		t.Errorf("response phases: X-Entry %q, X-Variant-Filter %q; want both pipelines' filters to have run", h.Get("X-Entry"), h.Get("X-Variant-Filter"))
	}
	// A client cannot pick the variant itself: the variants are routed_only, and the entry
	// pipeline sets the header.
	if status, got, _ := getWith(t, gw.URL+"/shop/cart", "X-Variant", "a"); status != 200 || got != "b" {
		t.Errorf("client's X-Variant: status %d from %q, want b (the filter's value)", status, got)
	}
	status, _, _ = getWith(t, gw.URL+"/loop/x")
	if status != http.StatusLoopDetected {
		t.Errorf("routing loop: status %d, want 508", status)
	}
	if logs := gw.Logs(); !strings.Contains(logs, "routing loop") {
		t.Errorf("no log line for the 508; logs:\n%s", logs)
	}
}
