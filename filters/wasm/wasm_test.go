package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
	"github.com/zclconf/go-cty/cty"
)

var filterSeq struct {
	sync.Mutex
	n int
}

// newFilter builds a filter on a test guest; edit adjusts the default config.
func newFilter(t testing.TB, guest string, edit func(*Config)) (*Filter, *enginetest.LogBuffer) {
	t.Helper()
	f, logs, err := tryFilter(t, guest, false, edit)
	if err != nil {
		t.Fatalf("building the filter: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("closing the filter: %v", err)
		}
	})
	return f, logs
}

func tryFilter(t testing.TB, guest string, validating bool, edit func(*Config)) (*Filter, *enginetest.LogBuffer, error) {
	var cfg Config
	cfg.SetDefaults()
	cfg.Module = Guest(t, guest)
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config does not validate: %v", err)
	}
	logs := &enginetest.LogBuffer{}
	filterSeq.Lock()
	filterSeq.n++
	stage := fmt.Sprintf("wasm:t%d", filterSeq.n)
	filterSeq.Unlock()
	env := &engine.BuildEnv{
		Pipeline: "test", Stage: stage, Validating: validating,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("filter", stage),
	}
	f, err := build(&cfg, env)
	return f, logs, err
}

// backend plays the upstream like the http-wasm TCK's backend: it echoes what it received.
func backend(c *engine.Ctx) {
	r := c.Request
	h := &c.Response.Header
	h.Set("x-httpwasm-next-method", string(r.Header.Method()))
	h.Set("x-httpwasm-next-uri", string(r.Header.RequestURI()))
	seen := map[string]int{}
	for k, v := range r.Header.All() {
		name := strings.ToLower(string(k))
		h.Add(fmt.Sprintf("x-httpwasm-next-header-%s-%d", name, seen[name]), string(v))
		seen[name]++
	}
	h.Set("x-upstream", "1")
	h.Set("x-both", "upstream")
	c.Response.SetStatusCode(200)
	c.Response.SetBody(append([]byte("upstream:"), r.Body()...))
}

// do runs one request through f and the backend; headers are name/value pairs.
func do(t testing.TB, f engine.Filter, method, uri, body string, headers ...string) *engine.Ctx {
	t.Helper()
	c := enginetest.NewCtx(t, method, uri, headers...)
	if body != "" {
		c.Request.SetBodyString(body)
	}
	enginetest.Serve(c, backend, f)
	return c
}

func hdr(c *engine.Ctx, name string) string { return string(c.Response.Header.Peek(name)) }

func TestBenchGuest(t *testing.T) {
	f, _ := newFilter(t, "bench", nil)
	c := do(t, f, "GET", "/x?y=1", "", "x-id", "7")
	if got := hdr(c, "x-httpwasm-next-header-x-wasm-0"); got != "1" {
		t.Errorf("upstream saw x-wasm %q, want 1", got)
	}
	if got := hdr(c, "x-filtered"); got != "yes" {
		t.Errorf("response x-filtered = %q, want yes", got)
	}
	if got := metricValue(f.m.calls); got != 2 {
		t.Errorf("calls metric = %v, want 2", got)
	}
}

func TestGuestCases(t *testing.T) {
	f, logs := newFilter(t, "goguest", func(c *Config) {
		c.Config = cty.ObjectVal(map[string]cty.Value{"header": cty.StringVal("X-Country"), "n": cty.NumberIntVal(3)})
	})
	type check func(t *testing.T, c *engine.Ctx)
	status := func(want int) check {
		return func(t *testing.T, c *engine.Ctx) {
			if got := c.Response.StatusCode(); got != want {
				t.Errorf("status = %d, want %d (body %q)", got, want, c.Response.Body())
			}
		}
	}
	body := func(want string) check {
		return func(t *testing.T, c *engine.Ctx) {
			if got := string(c.Response.Body()); got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
		}
	}
	header := func(name, want string) check {
		return func(t *testing.T, c *engine.Ctx) {
			if got := hdr(c, name); got != want {
				t.Errorf("header %s = %q, want %q", name, got, want)
			}
		}
	}
	headers := func(name string, want ...string) check {
		return func(t *testing.T, c *engine.Ctx) {
			var got []string
			for _, v := range c.Response.Header.PeekAll(name) {
				got = append(got, string(v))
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("header %s = %q, want %q", name, got, want)
			}
		}
	}
	trailer := func(name, want string) check {
		return func(t *testing.T, c *engine.Ctx) {
			got := string(bytes.Join(trailerValues(&c.Response.Header, []byte(name)), []byte("|")))
			if got != want {
				t.Errorf("trailer %s = %q, want %q", name, got, want)
			}
		}
	}
	tests := []struct {
		name    string
		method  string
		uri     string
		body    string
		headers []string
		checks  []check
	}{
		{"config", "GET", "/", "", nil, []check{status(200), body(`{"header":"X-Country","n":3}`)}},
		{"limits", "GET", "/some/long/path?q=1", "", []string{"x-multi", "1", "X-Multi", "2"}, []check{status(200), body("")}},
		{"names", "GET", "/", "", []string{"X-Multi", "1", "x-multi", "2", "Accept", "a"}, []check{body("x-test,x-multi,accept")}},
		{"values", "GET", "/", "", []string{"x-multi", "1", "X-MULTI", "2"}, []check{body("1,2")}},
		{"info", "PATCH", "/a%2Fb/c?x=%20y", "", nil, []check{body("PATCH /a%2Fb/c?x=%20y HTTP/1.1 127.0.0.1:40000")}},
		{"respond", "GET", "/", "", nil, []check{status(418), headers("x-guest", "teapot", "second"), body("short and stout"), header("x-upstream", "")}},
		{"merge", "GET", "/", "", nil, []check{status(200), header("x-guest-only", "guest"), header("x-both", "upstream"), body("upstream:")}},
		{"merge", "GET", "/", "", []string{"x-status", "1"}, []check{status(299), header("x-guest-only", "guest")}},
		{"rewrite", "GET", "/old", "old body", []string{"x-new-uri", "/new%20path?a=b", "x-drop", "1"}, []check{
			header("x-httpwasm-next-method", "PUT"), header("x-httpwasm-next-uri", "/new%20path?a=b"),
			header("x-httpwasm-next-header-x-drop-0", ""), header("x-httpwasm-next-header-x-added-0", "a"),
			header("x-httpwasm-next-header-x-added-1", "b"), header("x-httpwasm-next-header-x-set-0", "s"), body("upstream:new body")}},
		{"buffer-response", "GET", "/", "", nil, []check{status(201), body("UPSTREAM:!"), header("x-upstream", "")}},
		{"read-request-later", "POST", "/", "payload", nil, []check{status(500)}},
		{"read-request-later", "POST", "/", "payload", []string{"x-buffer", "1"}, []check{status(200), header("x-request-body", "payload")}},
		{"mutate-after-next", "GET", "/", "", nil, []check{status(500)}},
		{"status-after-next", "GET", "/", "", nil, []check{status(500)}},
		{"status-code", "GET", "/", "", nil, []check{header("x-upstream-status", "200")}},
		{"is-error", "GET", "/", "", nil, []check{header("x-is-error", "0")}},
		{"reqctx", "GET", "/", "", nil, []check{header("x-reqctx", "42")}},
		{"features", "GET", "/", "", nil, []check{body("start=0 now=0 all=7")}},
		{"trailers", "GET", "/", "", nil, []check{status(500)}},
		{"trailers", "GET", "/", "", []string{"x-enable", "1"}, []check{status(200), body("answered with a trailer"), trailer("grpc-status", "0")}},
		{"trailer-before-next", "GET", "/", "", nil, []check{status(200), body("upstream:"), trailer("x-guest-trailer", "g"), trailer("x-dropped", "")}},
		{"panic", "GET", "/", "", nil, []check{status(500), header("x-upstream", "")}},
		{"oom", "GET", "/", "", nil, []check{status(500)}},
		{"none", "GET", "/", "", nil, []check{status(200), body("upstream:")}},
		{"sandbox", "GET", "/", "", nil, []check{status(200), body("file=true dir=true env=0 args=0")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := do(t, f, tt.method, tt.uri, tt.body, append([]string{"x-test", tt.name}, tt.headers...)...)
			for _, ch := range tt.checks {
				ch(t, c)
			}
		})
	}

	t.Run("log", func(t *testing.T) {
		do(t, f, "GET", "/", "", "x-test", "log")
		out := logs.String()
		for _, want := range []string{
			`level=DEBUG msg="guest says level -1" filter=`, `level=INFO msg="guest says level 0"`,
			`level=WARN msg="guest says level 1"`, `level=ERROR msg="guest says level 2"`,
			`msg="to stdout" filter=wasm:`, `stream=stdout`, `level=WARN msg="to stderr"`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "level 3") {
			t.Errorf("level 3 (none) was logged")
		}
	})
	t.Run("panic is logged", func(t *testing.T) {
		if out := logs.String(); !strings.Contains(out, "guest panic on purpose") {
			t.Errorf("the guest's panic message did not reach the log:\n%s", out)
		}
	})
}

// TestResponseMergeHeaders checks the merge rule at the unit level, with a guest header the
// upstream also sets and one it does not.
func TestFaults(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("skip=%v", skip), func(t *testing.T) {
			f, _ := newFilter(t, "faults", func(c *Config) {
				c.PoolMax = 1
				c.PoolWait = engine.Duration(5 * time.Second)
				if skip {
					c.OnError = "skip"
				}
			})
			for i, mode := range []string{"u", "o", "h", "g"} {
				c := do(t, f, "GET", "/", "", "x-mode", mode)
				if skip {
					if c.Response.StatusCode() != 200 || hdr(c, "x-upstream") != "1" {
						t.Errorf("mode %s skipped: status %d, upstream %q; want the upstream's 200", mode, c.Response.StatusCode(), hdr(c, "x-upstream"))
					}
				} else if c.Response.StatusCode() != 500 || hdr(c, "x-upstream") != "" {
					t.Errorf("mode %s: status %d (upstream %q), want 500 without reaching the upstream", mode, c.Response.StatusCode(), hdr(c, "x-upstream"))
				}
				if got := metricValue(f.m.traps); got != float64(i+1) {
					t.Errorf("after mode %s traps = %v, want %d", mode, got, i+1)
				}
				// The next request runs on a fresh instance: its call count starts again at 1.
				c = do(t, f, "GET", "/", "")
				if c.Response.StatusCode() != 200 || hdr(c, "x-calls") != "1" {
					t.Errorf("after mode %s: status %d, x-calls %q; want 200 from a fresh instance", mode, c.Response.StatusCode(), hdr(c, "x-calls"))
				}
			}
			c := do(t, f, "GET", "/", "")
			if hdr(c, "x-calls") != "2" {
				t.Errorf("a healthy instance was not reused: x-calls %q", hdr(c, "x-calls"))
			}
			if got := metricValue(f.m.instances); got != 1 {
				t.Errorf("instances = %v, want 1", got)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	f, _ := newFilter(t, "faults", func(c *Config) {
		c.Timeout = engine.Duration(30 * time.Millisecond)
		c.PoolWait = engine.Duration(5 * time.Second)
	})
	start := time.Now()
	c := do(t, f, "GET", "/", "", "x-mode", "l")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the looping guest ran %v", took)
	}
	if c.Response.StatusCode() != 503 {
		t.Errorf("status = %d, want 503", c.Response.StatusCode())
	}
	if got := metricValue(f.m.timeouts); got != 1 {
		t.Errorf("timeouts = %v, want 1", got)
	}
	for range 3 {
		c = do(t, f, "GET", "/", "")
		if c.Response.StatusCode() != 200 || hdr(c, "x-filtered") != "" && false {
			t.Errorf("after the timeout: status %d", c.Response.StatusCode())
		}
	}
}

// TestTimeoutAfterShortCalls checks the deadline watchdog (instance.watch) on one instance whose
// timer was armed by earlier short calls: a looping call that starts while that timer is pending
// is stopped at its own deadline, not the earlier call's (never before it has run for timeout),
// and the next request is served by a fresh instance.
func TestTimeoutAfterShortCalls(t *testing.T) {
	const timeout = 100 * time.Millisecond
	f, _ := newFilter(t, "faults", func(c *Config) {
		c.Timeout = engine.Duration(timeout)
		c.PoolMax = 1
		c.PoolWait = engine.Duration(5 * time.Second)
	})
	// Short calls for most of a timeout: the timer they armed fires while the loop runs.
	for first := time.Now(); time.Since(first) < timeout*6/10; {
		if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 {
			t.Fatalf("short call: status %d", c.Response.StatusCode())
		}
	}
	start := time.Now()
	c := do(t, f, "GET", "/", "", "x-mode", "l")
	took := time.Since(start)
	if c.Response.StatusCode() != 503 {
		t.Errorf("status = %d, want 503", c.Response.StatusCode())
	}
	if took < timeout {
		t.Errorf("the looping guest was stopped after %v, before its timeout %v", took, timeout)
	}
	if took > 2*time.Second {
		t.Errorf("the looping guest ran %v", took)
	}
	if got := metricValue(f.m.timeouts); got != 1 {
		t.Errorf("timeouts = %v, want 1", got)
	}
	if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 {
		t.Errorf("after the timeout: status %d", c.Response.StatusCode())
	}
}

func TestPoolLimits(t *testing.T) {
	f, _ := newFilter(t, "bench", func(c *Config) {
		c.PoolMin = 1
		c.PoolMax = 2
		c.PoolWait = engine.Duration(20 * time.Millisecond)
	})
	// Two requests pin both instances (their response phase has not run yet).
	var held []*engine.Ctx
	for range 2 {
		c := enginetest.NewCtx(t, "GET", "/")
		if v := f.OnRequest(c); v != engine.Continue {
			t.Fatalf("verdict %v", v)
		}
		held = append(held, c)
	}
	c := enginetest.NewCtx(t, "GET", "/")
	start := time.Now()
	if v := f.OnRequest(c); v != engine.Respond || c.Response.StatusCode() != 503 {
		t.Errorf("third request: verdict %v status %d, want 503", v, c.Response.StatusCode())
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Errorf("gave up after %v, before pool_wait", waited)
	}
	if metricValue(f.m.poolWaits) != 1 || metricValue(f.m.poolFull) != 1 {
		t.Errorf("pool metrics: waits %v exhausted %v", metricValue(f.m.poolWaits), metricValue(f.m.poolFull))
	}
	if got := metricValue(f.m.instances); got != 2 {
		t.Errorf("instances = %v, want pool_max 2", got)
	}
	// A waiting request gets the instance a finishing request returns.
	done := make(chan int)
	go func() {
		c := enginetest.NewCtx(t, "GET", "/")
		f.OnRequest(c)
		f.OnResponse(c)
		done <- c.Response.StatusCode()
	}()
	time.Sleep(5 * time.Millisecond)
	f.OnResponse(held[0])
	if st := <-done; st != 200 {
		t.Errorf("waiting request: status %d", st)
	}
	f.OnResponse(held[1])
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		guest string
		edit  func(*Config)
		want  []string
	}{
		{"bad_exports", nil, []string{
			"handle_request() -> i32, want handle_request() -> i64",
			"does not export function handle_response(i32, i32) -> ()"}},
		{"bad_imports", nil, []string{
			"imports http_handler.get_headers, which is not an http-wasm host function",
			"imports http_handler.get_methd, which is not an http-wasm host function (did you mean get_method?)",
			"imports http_handler.get_uri as (i32) -> i32, but the host defines it as (i32, i32) -> i32",
			"imports env.abort, but the host offers only the http_handler and wasi_snapshot_preview1 modules",
			`does not export its memory as "memory"`}},
		{"big_memory", nil, []string{"module " + "", "320"}},
		{"start_trap", nil, []string{"get_method called outside a request"}},
		{"start_trap", func(c *Config) { c.Timeout = engine.Duration(time.Second) }, []string{"get_method called outside a request"}},
		{"bench", func(c *Config) { c.Module = "/nonexistent/x.wasm" }, []string{"reading module /nonexistent/x.wasm"}},
	}
	for _, tt := range tests {
		for _, validating := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/validating=%v", tt.guest, validating), func(t *testing.T) {
				f, _, err := tryFilter(t, tt.guest, validating, tt.edit)
				if err == nil {
					f.Close()
					t.Fatal("built without error")
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				if !strings.Contains(err.Error(), "module ") {
					t.Errorf("error does not name the module: %v", err)
				}
			})
		}
	}
	t.Run("not wasm", func(t *testing.T) {
		_, _, err := tryFilter(t, "bench", false, func(c *Config) { c.Module = Guest(t, "bench") + ".txt" })
		if err == nil {
			t.Fatal("no error")
		}
	})
}

// TestStartTimeout: a start function that never returns fails the build once load_timeout has
// passed, whether it loops or recurses without a loop, whether it is the exported _initialize or
// the start section's function, and whatever the per-call time limit (none included).
func TestStartTimeout(t *testing.T) {
	for _, guest := range []string{"start_loop", "start_section_loop"} {
		for _, unlimited := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/unlimited_time=%v", guest, unlimited), func(t *testing.T) {
				t.Parallel()
				testStartTimeout(t, guest, unlimited)
			})
		}
	}
}

func testStartTimeout(t *testing.T, guest string, unlimited bool) {
	began := time.Now()
	f, _, err := tryFilter(t, guest, false, func(c *Config) {
		c.LoadTimeout = engine.Duration(300 * time.Millisecond)
		c.UnlimitedTime = unlimited
	})
	if err == nil {
		f.Close()
		t.Fatal("built without error")
	}
	if !strings.Contains(err.Error(), "did not finish within load_timeout (300ms)") {
		t.Errorf("error %v, want the start function's timeout", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the build took %v", took)
	}
}

func TestCommandStart(t *testing.T) {
	f, _ := newFilter(t, "command", nil)
	c := do(t, f, "GET", "/", "")
	if got := hdr(c, "x-features"); got != "2" {
		t.Errorf("features enabled by _start = %q, want 2 (buffer_response)", got)
	}
	// Features enabled by the start function hold for every request of the instance.
	in, err := f.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer f.release(in)
	in.begin(enginetest.NewCtx(t, "GET", "/"))
	defer in.end()
	if in.features != featureBufferResponse {
		t.Errorf("request features %d, want buffer_response from _start", in.features)
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	c.SetDefaults()
	c.MemoryLimit = 1000
	c.PoolMin = 5
	c.PoolMax = 2
	c.OnError = "ignore"
	errs := engine.FieldErrors(c.Validate())
	fields := map[string]bool{}
	for _, e := range errs {
		if fe, ok := engine.AsFieldError(e); ok {
			fields[fe.Field] = true
		}
	}
	for _, want := range []string{"module", "memory_limit", "pool_min", "on_error"} {
		if !fields[want] {
			t.Errorf("no error on %s: %v", want, errs)
		}
	}
}

func TestCloseIsIdempotentAndRefusesRequests(t *testing.T) {
	f, _, err := tryFilter(t, "bench", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	c := enginetest.NewCtx(t, "GET", "/")
	if v := f.OnRequest(c); v != engine.Respond || c.Response.StatusCode() != 503 {
		t.Errorf("request on a closed filter: %v %d", v, c.Response.StatusCode())
	}
	_ = context.Background()
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestSkipUndoesGuestResponse checks that with on_error = "skip" a guest that wrote part of a
// response before trapping leaves no trace of it: the request continues as if the filter were
// absent.
func TestSkipUndoesGuestResponse(t *testing.T) {
	f, _ := newFilter(t, "goguest", func(c *Config) { c.OnError = "skip" })
	c := do(t, f, "GET", "/", "", "x-test", "write-then-panic")
	if c.Response.StatusCode() != 200 || hdr(c, "x-partial") != "" || string(c.Response.Body()) != "upstream:" {
		t.Errorf("status %d, x-partial %q, body %q: want the upstream's response untouched",
			c.Response.StatusCode(), hdr(c, "x-partial"), c.Response.Body())
	}
	if got := metricValue(f.m.traps); got != 1 {
		t.Errorf("traps = %v, want 1", got)
	}
}

// TestUpstreamFailure checks handle_response's is_error and that a failed pipeline keeps its
// own status over one the guest set before next.
func TestUpstreamFailure(t *testing.T) {
	f, _ := newFilter(t, "goguest", nil)
	failing := func(c *engine.Ctx) { c.Fail(502, fmt.Errorf("upstream refused")) }
	for _, tc := range []struct {
		test, header, want string
	}{
		{"is-error", "x-is-error", "1"},
		{"merge", "x-guest-only", "guest"},
	} {
		c := enginetest.NewCtx(t, "GET", "/", "x-test", tc.test, "x-status", "1")
		enginetest.Serve(c, failing, f)
		if c.Response.StatusCode() != 502 {
			t.Errorf("%s: status %d, want the pipeline's 502", tc.test, c.Response.StatusCode())
		}
		if got := hdr(c, tc.header); got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.test, tc.header, got, tc.want)
		}
	}
}

// TestSkipOnTimeoutAndFullPool checks on_error = "skip" for the failures that answer 503 under
// "deny": the request goes on to the upstream.
func TestSkipOnTimeoutAndFullPool(t *testing.T) {
	f, _ := newFilter(t, "faults", func(c *Config) {
		c.OnError = "skip"
		c.Timeout = engine.Duration(20 * time.Millisecond)
		c.PoolMax = 1
		c.PoolWait = 0
	})
	c := do(t, f, "GET", "/", "", "x-mode", "l")
	if c.Response.StatusCode() != 200 || hdr(c, "x-upstream") != "1" {
		t.Errorf("timeout skipped: status %d upstream %q", c.Response.StatusCode(), hdr(c, "x-upstream"))
	}
	held := enginetest.NewCtx(t, "GET", "/")
	// The replacement for the timed-out instance is created in the background: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.OnRequest(held)
		if in, ok := pinned.Get(held); ok && in != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no instance came back after the timeout")
		}
		time.Sleep(time.Millisecond)
		held = enginetest.NewCtx(t, "GET", "/")
	}
	c = do(t, f, "GET", "/", "")
	if c.Response.StatusCode() != 200 || hdr(c, "x-upstream") != "1" || hdr(c, "x-calls") != "" {
		t.Errorf("full pool skipped: status %d upstream %q x-calls %q", c.Response.StatusCode(), hdr(c, "x-upstream"), hdr(c, "x-calls"))
	}
	f.OnResponse(held)
}

// TestCloseWhileRequestInFlight closes a filter while a request holds an instance (a drain that
// timed out): the runtime stays open under it, its handle_response is refused (503, logged: the
// filter stops every guest when it closes), and its release closes the runtime.
func TestCloseWhileRequestInFlight(t *testing.T) {
	f, _, err := tryFilter(t, "bench", false, func(c *Config) { c.PoolMin = 2 })
	if err != nil {
		t.Fatal(err)
	}
	c := enginetest.NewCtx(t, "GET", "/")
	if v := f.OnRequest(c); v != engine.Continue {
		t.Fatalf("verdict %v", v)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.rt.CompileModule(context.Background(), []byte("\x00asm\x01\x00\x00\x00")); err != nil {
		t.Fatalf("the runtime was closed under a pinned instance: %v", err)
	}
	backend(c)
	f.OnResponse(c)
	if got := c.Response.StatusCode(); got != 503 || !errors.Is(c.Failure, errStopped) {
		t.Errorf("handle_response after Close: status %d, failure %v; want 503 and %v", got, c.Failure, errStopped)
	}
	if _, err := f.rt.CompileModule(context.Background(), []byte("\x00asm\x01\x00\x00\x00")); err == nil {
		t.Error("the runtime is still open after the last instance came back")
	}
	if got := metricValue(f.m.instances); got != 0 {
		t.Errorf("instances = %v after close", got)
	}
}

// TestReleaseBetweenPhases holds 16 requests upstream at once: pinned (the default), each holds an
// instance; with release_between_phases the instances go back to the pool, and each request's
// handle_response still gets its own reqCtx and the response writes its handle_request recorded.
func TestReleaseBetweenPhases(t *testing.T) {
	for _, release := range []bool{false, true} {
		t.Run(fmt.Sprintf("release=%v", release), func(t *testing.T) {
			f, _ := newFilter(t, "reqctx", func(c *Config) {
				c.ReleaseBetweenPhases = release
				c.PoolMin = 1
			})
			const n = 16
			var arrived sync.WaitGroup
			arrived.Add(n)
			gate := make(chan struct{})
			p := engine.NewPipeline("t", engine.MatchConfig{}, "", []engine.Stage{{Kind: "wasm", Filter: f}},
				engine.TerminalFunc(func(c *engine.Ctx) {
					arrived.Done()
					<-gate // every request is between its phases now
					c.Response.SetStatusCode(fasthttp.StatusOK)
				}))
			ctxs := make([]*engine.Ctx, n)
			for i := range ctxs {
				ctxs[i] = enginetest.NewCtx(t, "GET", "/", "x-n", string(rune('A'+i)))
			}
			var done sync.WaitGroup
			for _, c := range ctxs {
				done.Add(1)
				go func() {
					defer done.Done()
					p.Serve(c)
				}()
			}
			arrived.Wait()
			live := f.live.Load()
			close(gate)
			done.Wait()
			if release && live > int32(runtime.GOMAXPROCS(0))+1 {
				t.Errorf("%d instances with %d requests between their phases, want at most %d", live, n, runtime.GOMAXPROCS(0)+1)
			}
			if !release && live != n {
				t.Errorf("%d instances pinned by %d requests", live, n)
			}
			for i, c := range ctxs {
				want := string(rune('A' + i))
				if got := string(c.Response.Header.Peek("x-echo")); got != want {
					t.Errorf("request %s: handle_response got reqCtx %q", want, got)
				}
				if got := string(c.Response.Header.Peek("x-before")); got != "yes" {
					t.Errorf("request %s: the header set before next=1 is %q, want yes", want, got)
				}
			}
		})
	}
}
