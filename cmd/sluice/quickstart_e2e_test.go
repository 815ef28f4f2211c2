package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/sluice-gateway/sluice/filters/jwt"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
	"github.com/sluice-gateway/sluice/testbed/upstream"
	"github.com/valyala/fasthttp"
)

// TestQuickstartServes serves examples/quickstart/gateway.hcl as `make run` does (its Wasm
// filter built from source, tracing every request to an OTLP receiver), its addresses moved to
// free ports and its access log to a file, and checks what issue 25 found wrong there:
//   - item 16: the /api/ pipeline (strip_prefix = "/api", traced) forwards /api/x as /x, and
//     otel_log records the client's path /api/x for the forwarded request and the rejected one
//     alike (it recorded /x for the forwarded one);
//   - item 17: the public pipeline (limit = 50, period = "1s", no burst) admits 50 requests sent
//     back to back, the first with RateLimit r=49, and no r promises more than followed (the
//     second request was refused, with r=49).
func TestQuickstartServes(t *testing.T) {
	src, err := os.ReadFile("../../examples/quickstart/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "filters/abrouter.wasm"), "./abrouter")
	build.Dir = "../../examples/filters/go"
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the quickstart filter: %v\n%s", err, out)
	}
	rcv, err := otlpreceiver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Close() })
	up1 := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "demo-1"}).Handle)
	up2 := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "demo-2"}).Handle)
	cfg := strings.NewReplacer(
		`"127.0.0.1:9001"`, fmt.Sprintf("%q", up1),
		`"127.0.0.1:9002"`, fmt.Sprintf("%q", up2),
		`"http://127.0.0.1:4318"`, fmt.Sprintf("%q", rcv.Endpoint),
		`output          = "stdout"`, `output          = "access.log"`,
	).Replace(string(src))
	if !strings.Contains(cfg, rcv.Endpoint) || !strings.Contains(cfg, `"access.log"`) || !strings.Contains(cfg, "sample_ratio    = 1.0") {
		t.Fatal("the quickstart changed: update the replacements above")
	}
	gw := gatewaytest.StartWith(t, cfg, gatewaytest.Options{Dir: dir})
	client := gatewaytest.Client()
	do := func(path, token string) *fasthttp.Response {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), new(fasthttp.Response)
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI(gw.URL + path)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if err := client.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// Item 16.
	token, err := jwt.Mint("HS256", []byte("quickstart-demo-secret-change-me-0123456789"), "", map[string]any{
		"iss": "https://sluice.quickstart/", "aud": "demo", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := do("/api/x", token); r.StatusCode() != 200 || !strings.Contains(string(r.Body()), `"uri": "/x",`) {
		t.Errorf("/api/x with a token: %d, the upstream got %s", r.StatusCode(), r.Body())
	}
	if r := do("/api/x", ""); r.StatusCode() != 401 {
		t.Errorf("/api/x without a token: %d, want 401", r.StatusCode())
	}

	// Issue 30: the A/B Wasm filter's X-Variant really splits traffic: the cookie keeps a
	// client on its variant, variant a on the first upstream and b on the second.
	for _, v := range []struct{ cookie, upstream string }{{"a", "demo-1"}, {"b", "demo-2"}} {
		req, resp := fasthttp.AcquireRequest(), new(fasthttp.Response)
		req.SetRequestURI(gw.URL + "/api/x")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Variant", "b") // the filter's value wins; a client's is overwritten
		req.Header.SetCookie("ab", v.cookie)
		if err := client.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		fasthttp.ReleaseRequest(req)
		if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), `"name": "`+v.upstream+`"`) {
			t.Errorf("variant %s: %d from %s, want 200 from %s", v.cookie, resp.StatusCode(), resp.Body(), v.upstream)
		}
	}
	// A new client is assigned a variant (the cookie it gets) and served by that variant.
	r := do("/api/x", token)
	set := string(r.Header.Peek("Set-Cookie"))
	want := map[string]string{"ab=a;": "demo-1", "ab=b;": "demo-2"}
	var assigned string
	for prefix, up := range want {
		if strings.HasPrefix(set, prefix) {
			assigned = up
		}
	}
	if assigned == "" || !strings.Contains(string(r.Body()), `"name": "`+assigned+`"`) {
		t.Errorf("a new client got Set-Cookie %q and was served by %s", set, r.Body())
	}

	// Item 17. The limit refills one request per 20ms, so on a slow machine more than 50 may
	// pass and r may count down slower than one per request; what may never happen is a refusal
	// among the first 50, or fewer admissions in a row than an r promised.
	var got []string
	var rs []int
	admitted := 0 // the run of 200s so far
	for i := range 51 {
		r := do("/public", "")
		rl := string(r.Header.Peek("RateLimit"))
		got = append(got, fmt.Sprintf("%d %s", r.StatusCode(), rl))
		var rv, tv int
		if _, err := fmt.Sscanf(rl, `"default";r=%d;t=%d`, &rv, &tv); err != nil {
			t.Fatalf("public request %d: RateLimit %q: %v", i+1, rl, err)
		}
		if r.StatusCode() != 200 {
			if i < 50 {
				t.Errorf("public request %d refused with no burst configured (limit = 50): %q", i+1, got)
			}
			break
		}
		rs = append(rs, rv)
		admitted++
	}
	if len(rs) > 0 && rs[0] != 49 {
		t.Errorf("the first public request's RateLimit says r=%d, want 49", rs[0])
	}
	for i, r := range rs {
		if after := admitted - i - 1; r > after && admitted < 51 {
			t.Errorf("public request %d promised r=%d, but only %d more were admitted: %q", i+1, r, after, got)
			break
		}
	}

	gw.Stop(t) // flushes the access log
	raw, err := os.ReadFile(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		for _, f := range strings.Fields(line) {
			if p, ok := strings.CutPrefix(f, "path="); ok {
				paths = append(paths, p)
			}
		}
	}
	if strings.Join(paths, " ") != "/api/x /api/x /api/x /api/x /api/x" {
		t.Errorf("otel_log recorded paths %q, want the client's /api/x for the forwarded, the rejected and the three A/B requests:\n%s", paths, raw)
	}

	// The dashboard sees the quickstart's traffic: its waterfalls (every request sampled) have
	// every filter of the api pipeline and of the A/B pipeline it routed to, and the 401 is
	// among the recent auth failures.
	ok := gw.Telemetry.Recent().List(telemetry.TraceQuery{Path: "/api/x", Status: 200})
	if len(ok) == 0 {
		t.Fatal("the dashboard's ring has no 200 for /api/x")
	}
	wf, found := gw.Telemetry.Recent().Get(ok[0].ID)
	if !found {
		t.Fatalf("trace %s listed but not found", ok[0].ID)
	}
	var spans []string
	for _, s := range wf.Spans {
		spans = append(spans, s.Kind+":"+s.Name+":"+s.Phase)
	}
	all := strings.Join(spans, " ")
	for _, want := range []string{"filter:otel_log:request", "filter:jwt:request", "filter:authorize:request", "filter:rate_limit:request",
		"filter:wasm:abrouter:request", "filter:compress:request", "terminal:balancer:", "filter:cache:request", "attempt:", "filter:otel_log:response"} {
		if !strings.Contains(all, want) {
			t.Errorf("the waterfall of /api/x lacks %s: %s", want, all)
		}
	}
	// jwt and authorize have no response phase (engine.RequestOnly): none is recorded.
	for _, skipped := range []string{"filter:jwt:response", "filter:authorize:response"} {
		if strings.Contains(all, skipped) {
			t.Errorf("the waterfall of /api/x has %s: %s", skipped, all)
		}
	}
	if edge := gw.Telemetry.Edge(10); len(edge.RecentAuth) == 0 || edge.RecentAuth[len(edge.RecentAuth)-1].Status != 401 || edge.RecentAuth[len(edge.RecentAuth)-1].Stage != "jwt" {
		t.Errorf("recent auth failures = %+v, want the 401 jwt answered", edge.RecentAuth)
	}
}
