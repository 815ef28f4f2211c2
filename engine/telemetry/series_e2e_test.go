package telemetry_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// exposition returns what /metrics serves, in the text format.
func exposition(t *testing.T) string {
	t.Helper()
	families, err := metrics.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// seriesCount is how many samples the exposition has.
func seriesCount(t *testing.T) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(exposition(t), "\n") {
		if line != "" && line[0] != '#' {
			n++
		}
	}
	return n
}

// TestMetricSeriesHygiene checks that the exposition is valid (the Prometheus text parser and
// promlint accept it), that hostile paths, hosts and methods add no series, and that the series
// of a pipeline and a target a reload removed are gone once the old configuration is closed.
func TestMetricSeriesHygiene(t *testing.T) {
	ok := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	other := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("other") })
	cfg := `
upstream "hyg_u" {
  target { address = %q }
%s}
pipeline "hyg_keep" {
  match { path_prefix = "/k/" }
  filter "compress" {}
  balancer { upstream = upstream.hyg_u }
}
%s`
	gone := `
pipeline "hyg_gone" {
  match { path_prefix = "/g/" }
  balancer { upstream = upstream.hyg_u }
}
`
	gw := gatewaytest.Start(t, fmt.Sprintf(cfg, ok, fmt.Sprintf("  target { address = %q }\n", other), gone))
	cl := gatewaytest.Client()
	do := func(method, host, path string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(gw.URL + path)
		req.Header.SetMethod(method)
		req.UseHostHeader = true
		req.Header.SetHost(host)
		if err := cl.Do(req, resp); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		do("GET", "x", "/k/a")
		do("GET", "x", "/g/a")
		do("BREW", "x", "/k/a")
		do("GET", "x", "/nowhere")
	}
	text := exposition(t)
	// The text parser reads it back, and promlint finds nothing to say.
	parser := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{`pipeline="hyg_gone"`, `target="` + other + `"`, `method="OTHER"`} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(text, `sluice_compress_responses_total{encoding="br",pipeline=""}`) || strings.Contains(text, `pipeline=""`) {
		t.Errorf("always-zero series with pipeline=\"\" exposed")
	}

	// Hostile input: 10,000 distinct paths, hosts and methods add no series.
	before := seriesCount(t)
	for i := 0; i < 10000; i++ {
		s := strconv.Itoa(i)
		do("M"+s, "h"+s+".example", "/k/p"+s)
	}
	if after := seriesCount(t); after != before {
		t.Errorf("10,000 distinct paths, hosts and methods took the series from %d to %d", before, after)
	}

	// The USE and per-filter series are there (filter timings: after enough requests for one
	// in 16 to be timed).
	text = exposition(t)
	for _, want := range []string{
		`sluice_filter_verdicts_total{filter="compress",pipeline="hyg_keep",verdict="continue"}`,
		`sluice_filter_duration_seconds_count{filter="compress",phase="response",pipeline="hyg_keep"}`,
		`sluice_requests_in_flight{listener="default"}`,
		`sluice_client_connections{listener="default"}`,
		`sluice_upstream_target_healthy{target="` + ok + `",upstream="hyg_u"} 1`,
		`sluice_requests_total{code="200",code_class="2xx",method="GET",pipeline="hyg_keep",source="upstream"}`,
		`sluice_requests_total{code="404",code_class="4xx",method="GET",pipeline="(none)",source="gateway"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}

	// A reload without hyg_gone and the second target: their series go once the previous
	// configuration is closed.
	select {
	case <-gw.Reload(t, fmt.Sprintf(cfg, ok, "", "")):
	case <-time.After(30 * time.Second):
		t.Fatal("the previous configuration was not closed")
	}
	text = exposition(t)
	for _, stale := range []string{`pipeline="hyg_gone"`, `target="` + other + `"`} {
		if strings.Contains(text, stale) {
			t.Errorf("after the reload the exposition still has %s", stale)
		}
	}
	if !strings.Contains(text, `pipeline="hyg_keep"`) {
		t.Error("after the reload the kept pipeline's series are gone")
	}
}
