package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
	"github.com/valyala/fasthttp"
)

// chromiumPath finds the browser the dashboard test drives (.ci/run installs Debian's chromium):
// required in CI, skipped with a message elsewhere when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/run installs it: apt-get install chromium)")
	}
	t.Skip("chromium not installed: apt-get install chromium")
	return ""
}

// stoppableUpstream serves the testbed echo upstream until stop is called.
func stoppableUpstream(t *testing.T, name string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: upstream.New(upstream.Options{Name: name}).Handle, CloseOnShutdown: true}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = srv.Shutdown()
			<-done
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

const dashToken = "dashboard-test-token-0123456789abcdef"

func dashboardConfig(listen, admin, upA, upB, gone, wasm, extra string) string {
	return fmt.Sprintf(`server { listen = %q }
admin {
  listen = %q
  token  = %q
}
telemetry {
  traces {
    exporter        = "stdout"
    sample_ratio    = 1.0
    response_header = "X-Trace-Id"
  }
}
upstream "alpha" {
  target { address = %q }
  health_check {
    path                = "/healthz"
    interval            = "500ms"
    unhealthy_threshold = 1
  }
}
upstream "beta" {
  target { address = %q }
}
# A target whose server is gone (its port closed), no health check: requests fail with connect_refused.
upstream "gamma" {
  target { address = %q }
}
pipeline "gone" {
  match { path_prefix = "/gone/" }
  balancer { upstream = upstream.gamma }
}
pipeline "api" {
  match { path_prefix = "/api/" }
  filter "headers" {
    request_set  = { "X-Dashboard" = "test" }
    response_set = { "X-Served-By" = "api" }
  }
  filter "rate_limit" {
    limit  = 1000
    period = "1m"
  }
  balancer { upstream = upstream.alpha }
}
pipeline "web" {
  match { path_prefix = "/web/" }
  filter "rate_limit" {
    limit  = 5
    period = "1h"
  }
  filter "wasm" {
    name   = "secheaders"
    module = %q
  }
  balancer { upstream = upstream.beta }
}
pipeline "private" {
  match { path_prefix = "/private/" }
  filter "jwt" {
    issuer      = "https://dashboard.test/"
    audiences   = ["dashboard"]
    algorithms  = ["HS256"]
    hmac_secret = "dashboard-test-hmac-secret-0123456789abcdef"
  }
  balancer { upstream = upstream.beta }
}
%s`, listen, admin, dashToken, upA, upB, gone, wasm, extra)
}

// TestDashboardInBrowser runs `sluice run` with two pipelines and two upstreams and drives the
// dashboard in headless Chromium: login, live counters, upstream health, a trace's waterfall,
// a refused reload. With SLUICE_UI_SCREENSHOTS=1 it saves a screenshot of each page under
// testbed/results/ui/ (README.md links them).
func TestDashboardInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	upA, stopA := stoppableUpstream(t, "alpha-1")
	upB := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "beta-1"}).Handle)
	listen, adminAddr, gone := freePort(t), freePort(t), freePort(t)
	// A Wasm filter for the Wasm page: the example WAT guest (wat2wasm, from wabt, which .ci/run
	// installs).
	wasm := filepath.Join(t.TempDir(), "secheaders.wasm")
	if out, err := exec.Command("wat2wasm", "../../examples/filters/wat/secheaders.wat", "-o", wasm).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	cfgPath := writeConfig(t, dashboardConfig(listen, adminAddr, upA, upB, gone, wasm, ""))
	_, logs := startSluice(t, cfgPath)
	admin := "http://" + adminAddr
	if !strings.Contains(logs.String(), "dashboard="+admin+"/ui/") {
		t.Errorf("the log does not print the dashboard's URL:\n%s", logs.String())
	}

	// Without the token the page and its data are refused.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/api/v1/overview", "/api/v1/pipelines", "/api/v1/traces", "/api/v1/config"} {
		if code := httpStatus(t, noRedirect, "GET", admin+p, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", p, code)
		}
		if code := httpStatus(t, noRedirect, "GET", admin+p, "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", p, code)
		}
		if code := httpStatus(t, noRedirect, "GET", admin+p, "Bearer "+dashToken); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", p, code)
		}
	}
	if code := httpStatus(t, noRedirect, "GET", admin+"/ui/", ""); code != http.StatusSeeOther {
		t.Errorf("GET /ui/ without the token: %d, want 303 to the login form", code)
	}
	if code := httpStatus(t, noRedirect, "POST", admin+"/api/v1/reload", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/reload with a wrong token: %d, want 401", code)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()

	// Every console error and uncaught exception, but the refused reload's own 422.
	var mu sync.Mutex
	var consoleErrors []string
	messages := chromedp.Console(browser)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			if strings.Contains(m.Text, "422") && strings.Contains(m.URL, "/api/v1/reload") {
				continue
			}
			mu.Lock()
			consoleErrors = append(consoleErrors, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
			mu.Unlock()
		}
	}()

	shots := os.Getenv("SLUICE_UI_SCREENSHOTS") != ""
	shotDir := filepath.Join("..", "..", "testbed", "results", "ui")
	screenshot := func(name string) {
		t.Helper()
		if !shots {
			return
		}
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.MkdirAll(shotDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shotDir, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// waitJS polls expr until it is true; errors while a page loads (its context goes away) are
	// retried.
	waitJS := func(what, expr string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		var last error
		for time.Now().Before(deadline) {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
			if err == nil && ok {
				return
			}
			last = err
			time.Sleep(50 * time.Millisecond)
		}
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		t.Fatalf("%s: not true within %v (last error: %v)\npage:\n%s", what, within, last, body)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	page := func(name string) {
		t.Helper()
		do("opening "+name, chromedp.Click(chromedp.CSS(`.top nav a[href="#`+name+`"]`)))
		waitJS(name+" shown", `!document.getElementById('page-`+name+`').hidden`, 5*time.Second)
	}

	// The login form, then the dashboard.
	do("loading the dashboard", chromedp.Navigate(admin+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	screenshot("login")
	do("a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"), chromedp.Submit(chromedp.CSS("#login-form")))
	waitJS("the login refused", `!!document.getElementById('login-error') && !document.getElementById('login-error').hidden`, 10*time.Second)
	do("logging in", chromedp.SendKeys(chromedp.CSS("#token"), dashToken), chromedp.Submit(chromedp.CSS("#login-form")))
	waitJS("pipelines on the overview", `!!document.querySelector('#ov-pipelines tr[data-pipeline="api"]') && !!document.querySelector('#ov-pipelines tr[data-pipeline="web"]')`, 15*time.Second)
	// The cookie is the session, not the token.
	cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil || cookie != "" {
		t.Errorf("document.cookie = %q (%v): the session cookie must be HttpOnly", cookie, err)
	}

	// Counters move after traffic.
	gw := "http://" + listen
	for i := 0; i < 30; i++ {
		get(t, gw+"/api/items/"+fmt.Sprint(i))
	}
	for i := 0; i < 8; i++ {
		get(t, gw+"/web/page") // the 6th and later are refused (429)
	}
	if r := get(t, gw+"/private/report?access_token=leaked"); r.StatusCode != 401 {
		t.Fatalf("/private/ without a token: %d, want 401", r.StatusCode)
	}
	waitJS("the api pipeline's request count", `(() => { const c = document.querySelector('#ov-pipelines tr[data-pipeline="api"] .ov-requests'); return c && Number(c.textContent) >= 30; })()`, 10*time.Second)
	screenshot("overview")

	page("pipelines")
	waitJS("the api pipeline's filters", `(() => { const p = document.querySelector('#pipelines-list [data-pipeline="api"]'); if (!p) return false;
		const h = p.querySelector('[data-filter="headers"] .filter-requests'), r = p.querySelector('[data-filter="rate_limit"] .filter-requests');
		return h && r && Number(h.textContent) >= 30 && Number(r.textContent) >= 30; })()`, 10*time.Second)
	screenshot("pipelines")

	// Keyboard navigation: focus a link, press Enter.
	do("keyboard navigation", chromedp.Focus(chromedp.CSS(`.top nav a[href="#upstreams"]`)), chromedp.KeyEvent("\r"))
	waitJS("upstreams shown by keyboard", `!document.getElementById('page-upstreams').hidden`, 5*time.Second)
	targetHealth := func(addr string) string {
		return `(() => { const c = document.querySelector('#upstreams-list tr[data-target="` + addr + `"] .health'); return c ? c.textContent : ''; })()`
	}
	waitJS("both targets healthy", targetHealth(upA)+`.includes('healthy') && !`+targetHealth(upA)+`.includes('unhealthy') && `+targetHealth(upB)+`.includes('healthy')`, 10*time.Second)
	screenshot("upstreams")

	// A traced request, found by its X-Trace-Id, shows every filter's phases and the attempt.
	resp := get(t, gw+"/api/traced?secret=hidden")
	traceID := resp.Header.Get("X-Trace-Id")
	if len(traceID) != 32 {
		t.Fatalf("X-Trace-Id = %q", traceID)
	}
	page("traces")
	do("searching the trace", chromedp.SendKeys(chromedp.CSS(`#trace-search input[name="trace_id"]`), traceID), chromedp.Click(chromedp.CSS(`#trace-search button[type="submit"]`)))
	waitJS("the waterfall", `document.getElementById('waterfall').dataset.trace === '`+traceID+`'`, 10*time.Second)
	for _, span := range []string{"server:", "filter:headers:request", "filter:rate_limit:request", "terminal:balancer", "filter:rate_limit:response", "filter:headers:response", "attempt:"} {
		waitJS("the waterfall's "+span, `!!document.querySelector('#waterfall [data-span^="`+span+`"]')`, 2*time.Second)
	}
	text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#waterfall")))
	if strings.Contains(text, "hidden") {
		t.Errorf("the waterfall shows the request's query string:\n%s", text)
	}
	screenshot("traces")

	page("limits")
	waitJS("the refused key", `document.querySelector('#limits-refused tbody').textContent.includes('127.0.0.1')`, 10*time.Second)
	waitJS("the 401's cause", `document.querySelector('#limits-auth tbody').textContent.includes('/private/report')`, 10*time.Second)
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#page-limits"))); strings.Contains(text, "leaked") {
		t.Errorf("the auth page shows the request's query:\n%s", text)
	}
	screenshot("limits")
	page("wasm")
	waitJS("the wasm filter's calls", `(() => { const r = [...document.querySelectorAll('#wasm-table tbody tr')].find(r => r.textContent.includes('secheaders'));
		return r && Number(r.querySelector('.wasm-calls').textContent) >= 5; })()`, 10*time.Second)
	// Instances in use and idle, and memory, each in its own column.
	waitJS("the wasm pool's columns", `(() => { const h = document.querySelector('#wasm-table thead').textContent, r = [...document.querySelectorAll('#wasm-table tbody tr')].find(r => r.textContent.includes('secheaders'));
		return h.includes('In use') && h.includes('Idle') && h.includes('Memory') && r && Number(r.querySelector('.wasm-in-use').textContent) >= 0 &&
			Number(r.querySelector('.wasm-idle').textContent) >= 1 && r.querySelector('.wasm-memory').textContent.endsWith(' MiB'); })()`, 10*time.Second)
	screenshot("wasm")

	// Stopping an upstream turns its target unhealthy on the page within the health-check
	// interval (500ms, one failure), plus a snapshot (1 s) and a probe's timeout.
	page("upstreams")
	stopA()
	// A stopped server's target: the attempt's failure shows by reason, in text.
	if r := get(t, gw+"/gone/x"); r.StatusCode != fasthttp.StatusBadGateway {
		t.Errorf("GET /gone/x (a closed port): %d, want 502", r.StatusCode)
	}
	waitJS("the gone target's connect_refused", `(() => { const c = document.querySelector('#upstreams-list tr[data-target="`+gone+`"] .failure-reasons'); return !!c && c.textContent.includes('connect_refused'); })()`, 5*time.Second)
	waitJS("the stopped target unhealthy", targetHealth(upA)+`.includes('unhealthy')`, 5*time.Second)
	waitJS("the upstream marked down", `document.querySelector('#upstreams-list [data-upstream="alpha"] h3').textContent.includes('no healthy target')`, 5*time.Second)
	screenshot("upstreams-down")

	// An invalid configuration: the reload is refused and its diagnostics shown.
	page("config")
	waitJS("the configuration", `document.getElementById('config-json').textContent.includes('"Pipelines"')`, 10*time.Second)
	cfgText, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#config-json")))
	if strings.Contains(cfgText, dashToken) {
		t.Errorf("the configuration page shows the admin token")
	}
	if err := os.WriteFile(cfgPath, []byte(dashboardConfig(listen, adminAddr, upA, upB, gone, wasm, `pipeline "broken" {
  filter "headerz" {}
  balancer { upstream = upstream.beta }
}
`)), 0o644); err != nil {
		t.Fatal(err)
	}
	do("reloading", chromedp.Click(chromedp.CSS("#reload-btn")))
	waitJS("the reload's diagnostics", `!document.getElementById('reload-diagnostics').hidden && document.getElementById('reload-diagnostics').textContent.includes('headerz')`, 15*time.Second)
	screenshot("config")

	// The same page on a phone.
	do("a phone's viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	page("overview")
	waitJS("overview on a phone", `!!document.querySelector('#ov-pipelines tr[data-pipeline="api"]')`, 5*time.Second)
	screenshot("phone-overview")
	page("traces")
	screenshot("phone-traces")

	// A reload through the API without the CSRF token is refused, even with the session.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/api/v1/reload', {method: 'POST'}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Errorf("POST /api/v1/reload with the session but no CSRF token: %d (%v), want 403", status, err)
	}
	time.Sleep(200 * time.Millisecond) // let the last console messages arrive
	mu.Lock()
	defer mu.Unlock()
	for _, e := range consoleErrors {
		if strings.Contains(e, "/api/v1/reload") && strings.Contains(e, "403") {
			continue // the refused fetch just above
		}
		t.Errorf("console: %s", e)
	}
}

func httpStatus(t *testing.T, c *http.Client, method, url, auth string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
