package wasm_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/sdk/sdktest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// The proxy-wasm examples (examples/filters/proxywasm) are built with the third-party
// AssemblyScript SDK from npm, once per test binary; make skips the build and npm ci when
// nothing changed, so later runs reuse both.
var (
	pwOnce sync.Once
	pwPath string
	pwErr  error
)

func pwExamples(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found (the proxy-wasm examples are built with the AssemblyScript SDK from npm): apt-get install nodejs npm")
	}
	pwOnce.Do(func() {
		out := filepath.Join(sdktest.Root(), "examples", "filters", "build")
		cmd := exec.Command("make", "-C", filepath.Join(sdktest.Root(), "sdk"), "proxywasm", "OUT="+out)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Run(); err != nil {
			pwErr = fmt.Errorf("make -C sdk proxywasm: %w\n%s", err, log.String())
		}
		pwPath = filepath.Join(out, "proxywasm", "examples.wasm")
	})
	if pwErr != nil {
		t.Fatal(pwErr)
	}
	return pwPath
}

// echoUpstream reports the request's headers as x-seen-<name> and answers "upstream:" + body.
func echoUpstream(c *fasthttp.RequestCtx) {
	for k, v := range c.Request.Header.All() {
		c.Response.Header.Add("x-seen-"+strings.ToLower(string(k)), string(v))
	}
	c.Response.Header.Set("Server", "upstream")
	c.SetBodyString("upstream:" + string(c.Request.Body()))
}

// pwGateway starts a gateway whose one pipeline runs the example under rootID, with extra
// filter attributes, in front of upstream.
func pwGateway(t *testing.T, rootID, extra string, upstream fasthttp.RequestHandler) *gatewaytest.Gateway {
	t.Helper()
	up := gatewaytest.Upstream(t, upstream)
	return gatewaytest.Start(t, fmt.Sprintf(`
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
    name    = "pw"
    module  = %q
    root_id = %q
%s
%s
  }
  balancer {
    upstream = upstream.u
  }
}
`, up, pwExamples(t), rootID, extra, configFor(extra)))
}

// configFor gives the guest a configuration unless extra has one: the AssemblyScript SDK
// 0.1.8 cannot read an empty one (its onConfigure reuses the previous call's buffer), under
// Envoy as here.
func configFor(extra string) string {
	if strings.Contains(extra, "config") {
		return ""
	}
	return `    config_raw = "{}"`
}

type pwResp struct {
	status int
	body   string
	header map[string]string
}

func pwDo(t *testing.T, gw *gatewaytest.Gateway, method, path, body string, headers ...string) pwResp {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(gw.URL + path)
	req.Header.SetMethod(method)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if body != "" {
		req.SetBodyString(body)
	}
	if err := gatewaytest.Client().DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	r := pwResp{status: resp.StatusCode(), body: string(resp.Body()), header: map[string]string{}}
	for k, v := range resp.Header.All() {
		r.header[strings.ToLower(string(k))] = string(v)
	}
	return r
}

func TestProxyWasmAddHeaders(t *testing.T) {
	gw := pwGateway(t, "add_headers", `    config_raw = "hello"`, echoUpstream)
	r := pwDo(t, gw, "GET", "/a/b?c=d", "", "x-remove-me", "1")
	want := map[string]string{
		"x-seen-x-pw-config":   "hello",
		"x-seen-x-pw-path":     "/a/b?c=d",
		"x-seen-x-pw-eos":      "1",
		"x-pw-response":        "added",
		"server":               "proxy-wasm",
		"x-pw-code-bytes":      "8", // response.code: an 8-byte little-endian integer
		"x-seen-x-remove-me":   "",
		"x-seen-x-pw-response": "",
	}
	for k, v := range want {
		if r.header[k] != v {
			t.Errorf("%s = %q, want %q", k, r.header[k], v)
		}
	}
	if src := r.header["x-seen-x-pw-source"]; !strings.HasPrefix(src, "127.0.0.1:") {
		t.Errorf("source.address = %q, want 127.0.0.1:PORT", src)
	}
	if r := pwDo(t, gw, "POST", "/", "with body"); r.header["x-seen-x-pw-eos"] != "0" {
		t.Errorf("end_of_stream of request headers with a body = %q, want 0", r.header["x-seen-x-pw-eos"])
	}
}

func TestProxyWasmLocalResponse(t *testing.T) {
	gw := pwGateway(t, "local_response", "", echoUpstream)
	r := pwDo(t, gw, "GET", "/deny/this", "")
	if r.status != 403 || r.body != "denied by proxy-wasm\n" || r.header["x-pw-local"] != "1" {
		t.Errorf("/deny: %d %q x-pw-local=%q, want 403 from the guest", r.status, r.body, r.header["x-pw-local"])
	}
	if r := pwDo(t, gw, "GET", "/ok", ""); r.status != 200 || r.body != "upstream:" {
		t.Errorf("/ok: %d %q, want the upstream's 200", r.status, r.body)
	}
}

func TestProxyWasmBodyRewrite(t *testing.T) {
	gw := pwGateway(t, "body_rewrite", "", echoUpstream)
	r := pwDo(t, gw, "POST", "/", "hello body")
	if r.body != "upstream:HELLO BODY [rewritten]" {
		t.Errorf("body %q, want the request body upper-cased by the guest and the response's rewritten", r.body)
	}
	if r.header["x-seen-x-pw-body-eos"] != "1" {
		t.Errorf("proxy_on_request_body was not called with end_of_stream")
	}
	// A body larger than what comes with the head streams in: it is read in whole for the
	// body callback.
	big := strings.Repeat("abcdefgh", 32<<10)
	if r := pwDo(t, gw, "POST", "/", big); r.body != "upstream:"+strings.ToUpper(big)+" [rewritten]" {
		t.Errorf("a 256 KiB body: %d bytes back, want it rewritten whole", len(r.body))
	}
}

// authService answers 200 to x-token: good, 401 otherwise, after delay.
func authService(delay time.Duration, calls *int64, mu *sync.Mutex) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		mu.Lock()
		*calls++
		mu.Unlock()
		time.Sleep(delay)
		if string(c.Path()) == "/check" && string(c.Request.Header.Peek("x-token")) == "good" {
			return
		}
		c.SetStatusCode(401)
	}
}

func TestProxyWasmHTTPCallAuth(t *testing.T) {
	var calls int64
	var mu sync.Mutex
	auth := gatewaytest.Upstream(t, authService(0, &calls, &mu))
	gw := pwGateway(t, "http_auth", fmt.Sprintf(`    upstreams = { auth = "http://%s" }`, auth), echoUpstream)
	r := pwDo(t, gw, "GET", "/", "", "x-token", "good")
	if r.status != 200 || r.header["x-seen-x-pw-auth"] != "passed" {
		t.Errorf("good token: %d, upstream saw x-pw-auth=%q; want the request resumed after the call", r.status, r.header["x-seen-x-pw-auth"])
	}
	r = pwDo(t, gw, "GET", "/", "", "x-token", "bad")
	if r.status != 403 || r.body != "forbidden by the auth service\n" {
		t.Errorf("bad token: %d %q, want the guest's 403", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("auth service called %d times, want 2", calls)
	}
}

// TestProxyWasmHTTPCallFails: with the auth service down the call fails, the guest is told so
// (no headers) and answers 403 itself.
func TestProxyWasmHTTPCallFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	gw := pwGateway(t, "http_auth", fmt.Sprintf(`    upstreams = { auth = "http://%s" }`, down), echoUpstream)
	if r := pwDo(t, gw, "GET", "/", "", "x-token", "good"); r.status != 403 {
		t.Errorf("auth service down: %d, want the guest's 403", r.status)
	}
}

// TestProxyWasmPausedPool: a paused request keeps its instance; with pool_max = 1, a second
// request while one is paused waits up to pool_wait and then fails cleanly with 503, or is
// served once the first finishes if pool_wait is long enough.
func TestProxyWasmPausedPool(t *testing.T) {
	var calls int64
	var mu sync.Mutex
	auth := gatewaytest.Upstream(t, authService(400*time.Millisecond, &calls, &mu))
	for _, tc := range []struct {
		wait   string
		second int
	}{{"20ms", 503}, {"5s", 200}} {
		t.Run(tc.wait, func(t *testing.T) {
			gw := pwGateway(t, "http_auth", fmt.Sprintf(`    upstreams = { auth = "http://%s" }
    pool_min  = 1
    pool_max  = 1
    pool_wait = %q`, auth, tc.wait), echoUpstream)
			first := make(chan pwResp)
			go func() { first <- pwDo(t, gw, "GET", "/", "", "x-token", "good") }()
			// The first request is paused once the auth service has its call.
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				n := calls
				mu.Unlock()
				if n > 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			second := pwDo(t, gw, "GET", "/", "", "x-token", "good")
			if second.status != tc.second {
				t.Errorf("second request with pool_wait %s: %d, want %d", tc.wait, second.status, tc.second)
			}
			if r := <-first; r.status != 200 {
				t.Errorf("paused request: %d, want 200", r.status)
			}
			mu.Lock()
			calls = 0
			mu.Unlock()
			if tc.second == 503 && !strings.Contains(gw.Logs(), "wasm pool exhausted") {
				t.Errorf("no log line says why the 503")
			}
		})
	}
}

func TestProxyWasmTick(t *testing.T) {
	gw := pwGateway(t, "tick_counter", "    pool_max = 1", echoUpstream)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := pwDo(t, gw, "GET", "/", "")
		n, _ := strconv.Atoi(r.header["x-pw-ticks"])
		if n >= 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("x-pw-ticks = %q after 10s, want proxy_on_tick called on the idle instance", r.header["x-pw-ticks"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProxyWasmSharedCAS: concurrent requests on four instances count in shared data with
// compare-and-swap: every count is handed out once.
func TestProxyWasmSharedCAS(t *testing.T) {
	gw := pwGateway(t, "shared_cas", "    pool_min = 4\n    pool_max = 4\n    pool_wait = \"5s\"", echoUpstream)
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	for range n {
		wg.Go(func() {
			r := pwDo(t, gw, "GET", "/", "")
			mu.Lock()
			seen[r.header["x-seen-x-pw-hits"]] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := 1; i <= n; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Errorf("count %d was never handed out (seen %v)", i, seen)
			break
		}
	}
}

func TestProxyWasmSharedQueue(t *testing.T) {
	gw := pwGateway(t, "shared_queue", "    pool_max = 1", echoUpstream)
	var last string
	for range 3 {
		r := pwDo(t, gw, "GET", "/q", "")
		if r.status != 200 {
			t.Fatalf("%d %q\n%s", r.status, r.body, gw.Logs())
		}
		last = r.header["x-pw-drained"]
	}
	if last != "3" {
		t.Errorf("x-pw-drained = %q after 3 requests, want 3 (proxy_on_queue_ready drains each enqueued path)", last)
	}
}

func TestProxyWasmMetrics(t *testing.T) {
	gw := pwGateway(t, "metrics", "", echoUpstream)
	for range 3 {
		pwDo(t, gw, "GET", "/", "")
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["filter"] != "wasm:pw" {
				continue
			}
			key := mf.GetName() + "/" + labels["name"]
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"sluice_wasm_guest_counter/requests_total":        3,
		"sluice_wasm_guest_gauge/inflight":                0,
		"sluice_wasm_guest_histogram/response_body_bytes": 3,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// TestProxyWasmReload: reloading a proxy-wasm filter with a tick and metrics leaves nothing of
// the old generations running: one tick loop remains, and requests are served throughout.
func TestProxyWasmReload(t *testing.T) {
	up := gatewaytest.Upstream(t, echoUpstream)
	cfg := func(n int) string {
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
    name       = "pw"
    module     = %q
    root_id    = "tick_counter"
    config_raw = "%d"
  }
  balancer {
    upstream = upstream.u
  }
}
`, up, pwExamples(t), n)
	}
	gw := gatewaytest.Start(t, cfg(0))
	for i := 1; i <= 5; i++ {
		<-gw.Reload(t, cfg(i))
		if r := pwDo(t, gw, "GET", "/", ""); r.status != 200 {
			t.Fatalf("after reload %d: %d", i, r.status)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := tickLoops()
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tick loops after 5 reloads, want 1: the old filters' ticks leak", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tickLoops counts the goroutines running a proxy-wasm filter's tick.
func tickLoops() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "(*pwFilter).tickLoop")
}

// TestProxyWasmExample serves examples/proxywasm/gateway.hcl (its module path made absolute) and
// checks what its README promises.
func TestProxyWasmExample(t *testing.T) {
	src, err := os.ReadFile("../../examples/proxywasm/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(string(src), "../filters/build/proxywasm/examples.wasm", pwExamples(t))
	gw := gatewaytest.Start(t, cfg)
	if r := pwDo(t, gw, "GET", "/hello", ""); r.status != 200 || r.body != "hello\n" || r.header["x-pw-response"] != "added" || r.header["server"] != "proxy-wasm" {
		t.Errorf("/hello: %d %q %v", r.status, r.body, r.header)
	}
	if r := pwDo(t, gw, "GET", "/deny/me", ""); r.status != 403 || r.body != "denied by proxy-wasm\n" {
		t.Errorf("/deny/me: %d %q, want the guest's 403", r.status, r.body)
	}
}

// TestProxyWasmUnknownRootID: the AssemblyScript SDK aborts when plugin_root_id names no root
// context it registered; the load fails quoting what the guest logged.
func TestProxyWasmUnknownRootID(t *testing.T) {
	var cfg wasm.Config
	cfg.SetDefaults()
	cfg.Module = pwExamples(t)
	cfg.RootID = "no_such_filter"
	raw := "{}"
	cfg.ConfigRaw = &raw
	f, err := wasm.New(&cfg, &engine.BuildEnv{Pipeline: "t", Stage: "wasm:root"})
	if err == nil {
		f.(io.Closer).Close()
		t.Fatal("a root_id the guest does not register loaded")
	}
	if !strings.Contains(err.Error(), "Missing root context factory for root id: no_such_filter") {
		t.Errorf("the load error does not quote the guest: %v", err)
	}
}

// TestProxyWasmTrailers: proxy_on_response_trailers is called for a response with trailers, and
// the trailer the guest adds reaches the client.
func TestProxyWasmTrailers(t *testing.T) {
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		_ = c.Response.Header.SetTrailer("grpc-status")
		c.Response.Header.Set("grpc-status", "0")
		c.SetBodyString("body with trailers")
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
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
    module     = %q
    config_raw = "xyz"
  }
  balancer {
    upstream = upstream.u
  }
}
`, up, wasm.Guest(t, "pw_edge")))
	resp, err := http.Get(gw.URL + "/z")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "body with trailers" || resp.Trailer.Get("grpc-status") != "0" || resp.Trailer.Get("x-pw-trailer") != "v" {
		t.Errorf("%q, trailers %v: want the upstream's trailers and x-pw-trailer: v", body, resp.Trailer)
	}
}
