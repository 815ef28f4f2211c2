package wasm

import (
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// waitGoroutines waits until at most base goroutines run (background work winds down after a
// filter closes), failing after 5s.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDefaultTimeoutCutsLoop: with no timeout configured, a looping guest is stopped at the
// default 1s and the request answered 503; the filter keeps serving.
func TestDefaultTimeoutCutsLoop(t *testing.T) {
	f, logs := newFilter(t, "hostile", nil)
	if f.timeout != time.Second {
		t.Fatalf("default timeout %v, want 1s", f.timeout)
	}
	began := time.Now()
	c := do(t, f, "GET", "/", "", "x-mode", "l")
	if took := time.Since(began); took < time.Second || took > 5*time.Second {
		t.Errorf("the looping request took %v, want about 1s", took)
	}
	if got := c.Response.StatusCode(); got != 503 {
		t.Errorf("status %d, want 503", got)
	}
	if !strings.Contains(logs.String(), "stopped at its timeout") {
		t.Errorf("no log line for the timeout:\n%s", logs)
	}
	if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 {
		t.Errorf("after the timeout: status %d", c.Response.StatusCode())
	}
}

// TestCloseStopsUnlimitedGuest: with unlimited_time, a looping guest runs until the filter
// closes; Close stops it, its request gets a logged 503, and no goroutine is left behind.
func TestCloseStopsUnlimitedGuest(t *testing.T) {
	base := runtime.NumGoroutine()
	f, logs, err := tryFilter(t, "hostile", false, func(c *Config) { c.UnlimitedTime = true })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *engine.Ctx)
	go func() {
		c := enginetest.NewCtx(t, "GET", "/", "x-mode", "l")
		f.OnRequest(c)
		done <- c
	}()
	// The guest is running once its call is counted; it must still run well past the default
	// timeout.
	for metricValue(f.m.calls) < 1 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("the unlimited guest returned")
	case <-time.After(1500 * time.Millisecond):
	}
	began := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-done:
		if got := c.Response.StatusCode(); got != 503 {
			t.Errorf("status %d, want 503", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the looping guest within 5s")
	}
	t.Logf("the guest stopped %v after Close", time.Since(began))
	if !strings.Contains(logs.String(), "filter was closed") {
		t.Errorf("no log line for the stopped request:\n%s", logs)
	}
	waitGoroutines(t, base)
}

// TestCallDepthLimit: unbounded recursion (no loop, only calls) traps at max_call_depth and fails
// its request with a log line naming the limit; a 500-deep call chain is fine.
func TestCallDepthLimit(t *testing.T) {
	f, logs := newFilter(t, "hostile", nil)
	if c := do(t, f, "GET", "/", "", "x-mode", "d"); c.Response.StatusCode() != 200 {
		t.Errorf("500 calls deep: status %d, want 200", c.Response.StatusCode())
	}
	began := time.Now()
	c := do(t, f, "GET", "/", "", "x-mode", "r")
	if got := c.Response.StatusCode(); got != 500 {
		t.Errorf("unbounded recursion: status %d, want 500", got)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("the recursion ran %v before it was stopped", took)
	}
	if !strings.Contains(logs.String(), "max_call_depth") {
		t.Errorf("no log line naming max_call_depth:\n%s", logs)
	}
	g, _ := newFilter(t, "hostile", func(c *Config) { c.MaxCallDepth = 100 })
	if c := do(t, g, "GET", "/", "", "x-mode", "d"); c.Response.StatusCode() != 500 {
		t.Errorf("500 calls deep with max_call_depth = 100: status %d, want 500", c.Response.StatusCode())
	}
}

// TestGuestBodyLimit: a guest writing a 1 GiB body (1 MiB at a time) is stopped at the limit, for
// the response and the request body.
func TestGuestBodyLimit(t *testing.T) {
	f, logs := newFilter(t, "hostile", func(c *Config) { c.MaxBodyBytes = 4 << 20 })
	for _, mode := range []string{"b", "q"} {
		c := do(t, f, "GET", "/", "", "x-mode", mode)
		if got := c.Response.StatusCode(); got != 500 {
			t.Errorf("mode %s: status %d, want 500", mode, got)
		}
		if n := len(c.Response.Body()); n > 1<<10 {
			t.Errorf("mode %s: the client got a %d-byte body", mode, n)
		}
	}
	if got := strings.Count(logs.String(), "would exceed 4194304 bytes"); got != 2 {
		t.Errorf("%d log lines about the limit, want 2:\n%s", got, logs)
	}
	// The default follows the server block.
	g, _, err := tryFilter(t, "hostile", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.lim.maxRespBody != defaultMaxBody || g.lim.maxReqBody != defaultMaxBody {
		t.Errorf("without a server block the limits are %d/%d, want %d", g.lim.maxReqBody, g.lim.maxRespBody, defaultMaxBody)
	}
}

// TestBreaker: breaker_failures traps open the breaker; requests are then answered 503 without
// calling the guest; after the cooldown one probe goes through and its success closes the
// breaker. With on_error = "skip" the open breaker lets requests continue without the guest.
func TestBreaker(t *testing.T) {
	for _, onError := range []string{"deny", "skip"} {
		t.Run(onError, func(t *testing.T) {
			f, logs := newFilter(t, "hostile", func(c *Config) {
				c.BreakerFailures = 5
				c.BreakerCooldown = engine.Duration(300 * time.Millisecond)
				c.OnError = onError
			})
			failStatus := 500
			if onError == "skip" {
				failStatus = 200
			}
			for i := range 5 {
				if c := do(t, f, "GET", "/", "", "x-mode", "u"); c.Response.StatusCode() != failStatus {
					t.Fatalf("trap %d: status %d", i, c.Response.StatusCode())
				}
			}
			calls := metricValue(f.m.calls)
			openStatus := 503
			if onError == "skip" {
				openStatus = 200
			}
			for range 20 {
				c := do(t, f, "GET", "/", "")
				if c.Response.StatusCode() != openStatus {
					t.Fatalf("breaker open: status %d, want %d", c.Response.StatusCode(), openStatus)
				}
				if onError == "skip" && string(c.Response.Body()) != "upstream:" {
					t.Fatalf("skip: body %q, want the upstream's", c.Response.Body())
				}
			}
			if got := metricValue(f.m.calls); got != calls {
				t.Errorf("the guest was called %v times while the breaker was open", got-calls)
			}
			if !strings.Contains(logs.String(), "circuit breaker open") {
				t.Errorf("no log line for the breaker opening:\n%s", logs)
			}
			time.Sleep(350 * time.Millisecond)
			if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 || metricValue(f.m.calls) == calls {
				t.Fatalf("probe after the cooldown: status %d, guest called: %v", c.Response.StatusCode(), metricValue(f.m.calls) != calls)
			}
			for range 5 {
				if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 {
					t.Fatalf("after a good probe: status %d", c.Response.StatusCode())
				}
			}
			if !strings.Contains(logs.String(), "circuit breaker closed") {
				t.Errorf("no log line for the breaker closing:\n%s", logs)
			}
		})
	}
}

// TestBreakerProbeFailureReopens: a probe that fails opens the breaker for another cooldown.
func TestBreakerProbeFailureReopens(t *testing.T) {
	f, _ := newFilter(t, "hostile", func(c *Config) {
		c.BreakerFailures = 1
		c.BreakerCooldown = engine.Duration(200 * time.Millisecond)
	})
	do(t, f, "GET", "/", "", "x-mode", "u")
	time.Sleep(250 * time.Millisecond)
	do(t, f, "GET", "/", "", "x-mode", "u") // the probe fails
	calls := metricValue(f.m.calls)
	if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 503 || metricValue(f.m.calls) != calls {
		t.Errorf("after a failed probe: status %d, guest called %v", c.Response.StatusCode(), metricValue(f.m.calls) != calls)
	}
}

var suppressedRE = regexp.MustCompile(`suppressed=(\d+)`)

// TestGuestLogRateLimit: a guest printing 100 lines per request for 20 requests gets at most
// log_lines_per_second lines a second into the log, and the rest are counted in a suppressed line.
func TestGuestLogRateLimit(t *testing.T) {
	f, logs := newFilter(t, "hostile", func(c *Config) { c.LogLinesPerSecond = 20 })
	began := time.Now()
	for range 20 {
		do(t, f, "GET", "/", "", "x-mode", "e")
	}
	elapsed := time.Since(began)
	// One more line after a pause reports what was suppressed.
	time.Sleep(100 * time.Millisecond)
	do(t, f, "GET", "/", "", "x-mode", "e")
	out := logs.String()
	lines := strings.Count(out, "hostile guest says hi!")
	if limit := 20 + int(20*(elapsed+100*time.Millisecond).Seconds()) + 2; lines > limit {
		t.Errorf("%d guest lines logged in %v, want at most %d", lines, elapsed, limit)
	}
	total := 0
	for _, m := range suppressedRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	if total == 0 || lines+total > 2100 || lines+total < 2000-1 {
		t.Errorf("%d logged + %d suppressed, want the 2,000 lines of the first 20 requests accounted for", lines, total)
	}
}

func TestLimitsValidate(t *testing.T) {
	var c Config
	c.SetDefaults()
	c.Module = "m.wasm"
	if c.Timeout.D() != time.Second || c.LoadTimeout.D() != 10*time.Second || c.MaxCallDepth != 10000 {
		t.Errorf("defaults: timeout %v, load_timeout %v, max_call_depth %d", c.Timeout.D(), c.LoadTimeout.D(), c.MaxCallDepth)
	}
	if err := c.Warnings(); err != nil {
		t.Errorf("defaults warn: %v", err)
	}
	c.Timeout = 0
	c.MaxCallDepth = 0
	c.BreakerFailures = 0
	fields := map[string]bool{}
	for _, e := range engine.FieldErrors(c.Validate()) {
		if fe, ok := engine.AsFieldError(e); ok {
			fields[fe.Field] = true
		}
	}
	for _, want := range []string{"timeout", "max_call_depth", "breaker_failures"} {
		if !fields[want] {
			t.Errorf("no error on %s", want)
		}
	}
	c.SetDefaults()
	c.Module = "m.wasm"
	c.Timeout = 0
	c.UnlimitedTime = true
	if err := c.Validate(); err != nil {
		t.Errorf("timeout 0 with unlimited_time: %v", err)
	}
	if fe, ok := engine.AsFieldError(c.Warnings()); !ok || fe.Field != "unlimited_time" {
		t.Errorf("unlimited_time: warning %v, want one on unlimited_time", c.Warnings())
	}
}

// TestUninstrumentableModuleFallsBack: a module the rewrite refuses still runs, with a logged
// warning, and its loops are still stopped: at the timeout, and by Close under unlimited_time.
func TestUninstrumentableModuleFallsBack(t *testing.T) {
	f, logs := newFilter(t, "uninstrumentable", func(c *Config) { c.Timeout = engine.Duration(200 * time.Millisecond) })
	if !f.lim.fallback || !strings.Contains(logs.String(), "cannot be instrumented") {
		t.Fatalf("fallback %v, logs:\n%s", f.lim.fallback, logs)
	}
	if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 {
		t.Errorf("plain request: status %d", c.Response.StatusCode())
	}
	began := time.Now()
	if c := do(t, f, "GET", "/", "", "x-mode", "l"); c.Response.StatusCode() != 503 {
		t.Errorf("looping request: status %d, want 503", c.Response.StatusCode())
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("the loop ran %v with a 200ms timeout", took)
	}
	if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 {
		t.Errorf("after the timeout: status %d", c.Response.StatusCode())
	}

	g, _, err := tryFilter(t, "uninstrumentable", false, func(c *Config) { c.UnlimitedTime = true })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		c := enginetest.NewCtx(t, "GET", "/", "x-mode", "l")
		g.OnRequest(c)
		done <- c.Response.StatusCode()
	}()
	for metricValue(g.m.calls) < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		if s != 503 {
			t.Errorf("stopped by Close: status %d, want 503", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the uninstrumented loop")
	}
}

// TestGuestWritesLargeBody: a body under the limit written in 1 MiB pieces arrives whole (past
// 1 MiB it is appended in the request's own buffer), and a later request starts afresh.
func TestGuestWritesLargeBody(t *testing.T) {
	f, _ := newFilter(t, "hostile", nil)
	for range 2 {
		c := do(t, f, "GET", "/", "", "x-mode", "m")
		body := c.Response.Body()
		if c.Response.StatusCode() != 200 || len(body) != 3<<20 {
			t.Fatalf("status %d, %d bytes; want 200 and 3 MiB", c.Response.StatusCode(), len(body))
		}
		for i := range 3 {
			if body[i<<20] != 'A' || body[(i+1)<<20-1] != 'Z' {
				t.Errorf("MiB %d of the body starts %q and ends %q, want A and Z", i, body[i<<20], body[(i+1)<<20-1])
			}
		}
	}
}
