package ratelimit

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// testConfig makes a config whose burst admits 1 + extra requests back to back (extra = 0: one
// per T, strictly spaced; the tests count what a burst adds on top of the first request).
func testConfig(key string, limit int, period time.Duration, extra int) *Config {
	c := &Config{}
	c.SetDefaults()
	burst := extra + 1
	c.Key, c.Limit, c.Period, c.Burst = key, limit, engine.Duration(period), &burst
	return c
}

func ptr(n int) *int { return &n }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testFilter builds a local-store filter whose clock is *now.
func testFilter(t testing.TB, cfg *Config, now *int64) *Filter {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := build(cfg, &engine.BuildEnv{Pipeline: "test", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ff := f.(*Filter)
	ff.clock = func() int64 { return *now }
	return ff
}

type result struct {
	status     int
	retryAfter string
	policy     []string
	rateLimit  []string
}

// serve runs one request through f (and extra filters after it) to a 200 terminal.
func serve(t testing.TB, f engine.Filter, setup func(c *engine.Ctx), headers ...string) result {
	t.Helper()
	c := enginetest.NewCtx(t, "GET", "/v1/items", headers...)
	if setup != nil {
		setup(c)
	}
	enginetest.Serve(c, enginetest.OK, f)
	return resultOf(c)
}

func resultOf(c *engine.Ctx) result {
	r := result{status: c.Response.StatusCode(), retryAfter: string(c.Response.Header.Peek("Retry-After"))}
	for _, v := range c.Response.Header.PeekAll("RateLimit-Policy") {
		r.policy = append(r.policy, string(v))
	}
	for _, v := range c.Response.Header.PeekAll("RateLimit") {
		r.rateLimit = append(r.rateLimit, string(v))
	}
	return r
}

func TestLimitedAnswer(t *testing.T) {
	now := int64(0)
	f := testFilter(t, testConfig("ip", 2, time.Minute, 0), &now) // T = 30s

	r := serve(t, f, nil)
	if r.status != 200 || r.retryAfter != "" {
		t.Fatalf("first request: status %d, Retry-After %q", r.status, r.retryAfter)
	}
	if want := []string{`"default";q=2;w=60;sluice-burst=1`}; !equal(r.policy, want) {
		t.Errorf("RateLimit-Policy = %q, want %q", r.policy, want)
	}
	// Strictly spaced (burst 1): the next request conforms in 30s.
	if want := []string{`"default";r=0;t=30`}; !equal(r.rateLimit, want) {
		t.Errorf("RateLimit = %q, want %q", r.rateLimit, want)
	}

	now = 5 * sec
	r = serve(t, f, nil)
	if r.status != 429 {
		t.Fatalf("second request 5s later: status %d, want 429", r.status)
	}
	if r.retryAfter != "25" {
		t.Errorf("Retry-After = %q, want 25", r.retryAfter)
	}
	if want := []string{`"default";r=0;t=25`}; !equal(r.rateLimit, want) {
		t.Errorf("RateLimit on 429 = %q, want %q", r.rateLimit, want)
	}
	if want := []string{`"default";q=2;w=60;sluice-burst=1`}; !equal(r.policy, want) {
		t.Errorf("RateLimit-Policy on 429 = %q", r.policy)
	}

	now = 30 * sec
	if r = serve(t, f, nil); r.status != 200 {
		t.Errorf("after Retry-After: status %d", r.status)
	}
}

// TestFieldsFollowDraft reads every field the filter writes with the draft's rules, over a run
// that goes from idle through refusals, with and without burst.
func TestFieldsFollowDraft(t *testing.T) {
	for _, burst := range []int{0, 20} {
		now := int64(0)
		f := testFilter(t, testConfig("ip", 100, time.Minute, burst), &now)
		for i := range 150 {
			now = int64(i) * 100 * ms
			r := serve(t, f, nil)
			if len(r.policy) != 1 || len(r.rateLimit) != 1 {
				t.Fatalf("request %d: fields %q %q, want one of each", i, r.policy, r.rateLimit)
			}
			pol, err := checkPolicyField(r.policy[0])
			if err != nil {
				t.Fatalf("RateLimit-Policy %q: %v", r.policy[0], err)
			}
			rl, err := checkRateLimitField(r.rateLimit[0])
			if err != nil {
				t.Fatalf("RateLimit %q: %v", r.rateLimit[0], err)
			}
			if pol[0].value != "default" || rl[0].value != "default" {
				t.Fatalf("policy identifiers %v and %v, want both \"default\"", pol[0].value, rl[0].value)
			}
			if q, _ := pol[0].param("q"); q != int64(100) {
				t.Errorf("q = %v", q)
			}
			if w, _ := pol[0].param("w"); w != int64(60) {
				t.Errorf("w = %v", w)
			}
			b, hasBurst := pol[0].param("sluice-burst")
			if !hasBurst || b != int64(burst+1) {
				t.Errorf("sluice-burst = %v (present %v) with burst %d", b, hasBurst, burst)
			}
			rv, _ := rl[0].param("r")
			tv, _ := rl[0].param("t")
			if r.status == 429 {
				if rv != int64(0) || r.retryAfter == "" || tv.(int64) < 1 {
					t.Fatalf("429 with r=%v t=%v Retry-After %q", rv, tv, r.retryAfter)
				}
				// Retry-After must not point before the end of the effective window.
				if ra := r.retryAfter; ra != strings.TrimSpace(ra) || ra < "1" {
					t.Errorf("Retry-After %q", ra)
				}
			} else if tv.(int64) < 1 || tv.(int64) > 60 || rv.(int64) > int64(burst) {
				t.Fatalf("admitted with r=%v t=%v", rv, tv)
			}
		}
	}
}

func TestRetryAfterMatchesWindow(t *testing.T) {
	now := int64(0)
	f := testFilter(t, testConfig("ip", 1, 10*time.Second, 0), &now)
	serve(t, f, nil)
	now = 2500 * ms
	r := serve(t, f, nil)
	// 7.5s to wait: Retry-After rounds up to 8, and t says the same moment.
	if r.status != 429 || r.retryAfter != "8" || !equal(r.rateLimit, []string{`"default";r=0;t=8`}) {
		t.Errorf("got %+v", r)
	}
}

func TestKeys(t *testing.T) {
	ip := func(a string) func(c *engine.Ctx) {
		return func(c *engine.Ctx) { c.ClientAddr = netip.MustParseAddr(a) }
	}
	claims := func(cl engine.Claims) func(c *engine.Ctx) {
		return func(c *engine.Ctx) { engine.ClaimsKey.Set(c, cl) }
	}
	type req struct {
		setup   func(c *engine.Ctx)
		headers []string
		want    int
	}
	tests := []struct {
		name string
		key  string
		reqs []req
	}{
		{"ip", "ip", []req{
			{ip("10.0.0.1"), nil, 200}, {ip("10.0.0.1"), nil, 429},
			{ip("10.0.0.2"), nil, 200}, {ip("2001:db8::1"), nil, 200}, {ip("2001:db8::1"), nil, 429},
			// No client address: the anonymous key, which is limited too.
			{func(c *engine.Ctx) { c.ClientAddr = netip.Addr{} }, nil, 200},
			{func(c *engine.Ctx) { c.ClientAddr = netip.Addr{} }, nil, 429},
		}},
		{"header", "header:X-Api-Key", []req{
			{nil, []string{"X-Api-Key", "a"}, 200}, {nil, []string{"x-api-key", "a"}, 429},
			{nil, []string{"X-Api-Key", "b"}, 200},
			{nil, nil, 200}, {nil, nil, 429}, // anonymous
			{nil, []string{"X-Api-Key", ""}, 429}, // an empty value is anonymous too
			{nil, []string{"X-Api-Key", "anonymous"}, 200},
		}},
		{"claim", "claim:sub", []req{
			{claims(engine.Claims{"sub": "alice"}), nil, 200}, {claims(engine.Claims{"sub": "alice"}), nil, 429},
			{claims(engine.Claims{"sub": "bob"}), nil, 200},
			{nil, nil, 200}, {claims(engine.Claims{"iss": "x"}), nil, 429}, // no claims, no sub: anonymous
		}},
		{"nested claim", "claim:org.id", []req{
			{claims(engine.Claims{"org": map[string]any{"id": "acme"}}), nil, 200},
			{claims(engine.Claims{"org": map[string]any{"id": "acme"}}), nil, 429},
			{claims(engine.Claims{"org": map[string]any{"id": "umbrella"}}), nil, 200},
		}},
		{"route", "route", []req{
			{ip("10.0.0.1"), []string{"X-Api-Key", "a"}, 200},
			{ip("10.0.0.2"), []string{"X-Api-Key", "b"}, 429},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := int64(0)
			f := testFilter(t, testConfig(tt.key, 1, time.Hour, 0), &now)
			for i, rq := range tt.reqs {
				if r := serve(t, f, rq.setup, rq.headers...); r.status != rq.want {
					t.Errorf("request %d: status %d, want %d", i, r.status, rq.want)
				}
			}
		})
	}
}

func TestHeadersOff(t *testing.T) {
	now := int64(0)
	cfg := testConfig("ip", 1, time.Minute, 0)
	cfg.Headers = false
	f := testFilter(t, cfg, &now)
	r := serve(t, f, nil)
	if r.status != 200 || len(r.policy)+len(r.rateLimit) != 0 {
		t.Errorf("admitted: %+v, want no RateLimit fields", r)
	}
	r = serve(t, f, nil)
	if r.status != 429 || r.retryAfter != "60" || len(r.policy)+len(r.rateLimit) != 0 {
		t.Errorf("refused: %+v, want 429 with only Retry-After", r)
	}
}

// TestUpstreamFieldsKept: the upstream's own fields stay; ours are added as further field lines.
func TestUpstreamFieldsKept(t *testing.T) {
	now := int64(0)
	f := testFilter(t, testConfig("ip", 10, time.Second, 0), &now)
	c := enginetest.NewCtx(t, "GET", "/")
	enginetest.Serve(c, func(c *engine.Ctx) {
		enginetest.OK(c)
		c.Response.Header.Add("RateLimit-Policy", `"upstream";q=5;w=1`)
		c.Response.Header.Add("RateLimit", `"upstream";r=4;t=1`)
	}, f)
	r := resultOf(c)
	if !equal(r.policy, []string{`"upstream";q=5;w=1`, `"default";q=10;w=1;sluice-burst=1`}) ||
		!equal(r.rateLimit, []string{`"upstream";r=4;t=1`, `"default";r=0;t=1`}) {
		t.Errorf("fields %q %q", r.policy, r.rateLimit)
	}
}

// TestStackedFilters: two rate_limit filters in a pipeline get distinct names, and each response
// phase reports its own policy, also when the second one refuses.
func TestStackedFilters(t *testing.T) {
	now := int64(0)
	perSec, err := build(testConfig("ip", 10, time.Second, 0), &engine.BuildEnv{Pipeline: "p", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	perMin, err := build(testConfig("ip", 2, time.Minute, 0), &engine.BuildEnv{Pipeline: "p", Logger: quiet, Earlier: []string{"rate_limit"}})
	if err != nil {
		t.Fatal(err)
	}
	perSec.(*Filter).clock = func() int64 { return now }
	perMin.(*Filter).clock = func() int64 { return now }
	run := func() result {
		c := enginetest.NewCtx(t, "GET", "/")
		enginetest.Serve(c, enginetest.OK, perSec, perMin)
		if o, _ := outcomeKey.Get(c); o != nil {
			t.Error("outcomes left on the request after the response phase")
		}
		return resultOf(c)
	}
	r := run()
	if r.status != 200 || !equal(r.rateLimit, []string{`"default-2";r=0;t=30`, `"default";r=0;t=1`}) ||
		!equal(r.policy, []string{`"default-2";q=2;w=60;sluice-burst=1`, `"default";q=10;w=1;sluice-burst=1`}) {
		t.Fatalf("first: %+v", r)
	}
	now = sec
	r = run()
	now = 2 * sec
	r = run()
	if r.status != 429 || !equal(r.rateLimit, []string{`"default-2";r=0;t=28`, `"default";r=0;t=1`}) {
		t.Errorf("third, refused by the per-minute policy: %+v", r)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(c *Config)
		field string
	}{
		{"bad key", func(c *Config) { c.Key = "cookie:x" }, "key"},
		{"bad header", func(c *Config) { c.Key = "header:Bad Name" }, "key"},
		{"empty claim", func(c *Config) { c.Key = "claim:" }, "key"},
		{"zero limit", func(c *Config) { c.Limit = 0 }, "limit"},
		{"zero period", func(c *Config) { c.Period = 0 }, "period"},
		{"too fine", func(c *Config) { c.Limit, c.Period = 1e6, engine.Duration(time.Millisecond) }, "period"},
		{"negative burst", func(c *Config) { c.Burst = ptr(-1) }, "burst"},
		// burst = 0 meant "no extra requests" before burst counted them all: now an error that says so.
		{"zero burst", func(c *Config) { c.Burst = ptr(0) }, "burst"},
		{"huge burst", func(c *Config) { c.Burst, c.Period, c.Limit = ptr(1<<30), engine.Duration(time.Hour), 1 }, "burst"},
		{"mode", func(c *Config) { c.OnStoreError = "retry" }, "on_store_error"},
		{"name", func(c *Config) { c.Name = `bad"name` }, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig("ip", 10, time.Second, 0)
			tt.edit(c)
			errs := engine.FieldErrors(c.Validate())
			if len(errs) != 1 {
				t.Fatalf("got %d errors (%v), want 1", len(errs), errs)
			}
			if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != tt.field {
				t.Errorf("error %v not on %s", errs[0], tt.field)
			}
		})
	}
	good := testConfig("header:X-Api-Key", 100, time.Minute, 20)
	good.Name, good.OnStoreError = "per-key.v1", "deny"
	if err := good.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestBuildStore(t *testing.T) {
	cfg := testConfig("ip", 10, time.Second, 0)
	cfg.Store = "missing"
	_, err := build(cfg, &engine.BuildEnv{Pipeline: "p", Logger: quiet, Redis: map[string]*engine.RedisConfig{}})
	if err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("unknown redis block: err = %v", err)
	}
	// Validating dials nothing and creates no client, even for an address nobody serves.
	cfg.Store = "main"
	rc := &engine.RedisConfig{Name: "main", Address: "127.0.0.1:1", Timeout: engine.Duration(50 * time.Millisecond)}
	f, err := build(cfg, &engine.BuildEnv{Pipeline: "p", Logger: quiet, Validating: true, Redis: map[string]*engine.RedisConfig{"main": rc}})
	if err != nil {
		t.Fatal(err)
	}
	clientsMu.Lock()
	_, made := clients[rc]
	clientsMu.Unlock()
	if made || f.(*Filter).remote != nil {
		t.Error("validating created a Redis client")
	}
}

func TestClientSharedPerBlock(t *testing.T) {
	rc := &engine.RedisConfig{Name: "main", Address: "127.0.0.1:1", Timeout: engine.Duration(50 * time.Millisecond)}
	env := &engine.BuildEnv{Pipeline: "p", Logger: quiet, Redis: map[string]*engine.RedisConfig{"main": rc}}
	cfg := testConfig("ip", 10, time.Second, 0)
	cfg.Store = "main"
	a, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := a.(*Filter), b.(*Filter)
	if fa.remote.sc != fb.remote.sc {
		t.Fatal("two filters on one redis block got two clients")
	}
	sc := fa.remote.sc
	if err := fa.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.client.Ping(t.Context()).Err(); errors.Is(err, errClientClosed) {
		t.Fatal("client closed while a filter still uses it")
	}
	if err := fb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.client.Ping(t.Context()).Err(); !errors.Is(err, errClientClosed) {
		t.Errorf("after the last filter closed, ping err = %v, want the client closed", err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hotPathFilter(b testing.TB, key string) (*Filter, *engine.Ctx) {
	now := int64(0)
	// 1M/s with a burst of 2^30: never refuses, however fast the loop.
	f := testFilter(b, testConfig(key, 1_000_000, time.Second, 1<<30-1), &now)
	f.clock = nil // the real clock: the request's start time
	c := enginetest.NewCtx(b, "GET", "/v1/items", "X-Api-Key", "key-0123456789")
	return f, c
}

func onePass(f *Filter, c *engine.Ctx) {
	if f.OnRequest(c) != engine.Continue {
		panic("refused")
	}
	f.OnResponse(c)
	c.Response.Reset() // the next request starts with a fresh response
}

func TestHotPathAllocs(t *testing.T) {
	for _, key := range []string{"ip", "header:X-Api-Key"} {
		f, c := hotPathFilter(t, key)
		onePass(f, c) // grows the Ctx's key slots once, as a pooled Ctx would have
		if n := testing.AllocsPerRun(1000, func() { onePass(f, c) }); n != 0 {
			t.Errorf("key %s: %v allocations per request, want 0", key, n)
		}
	}
	// The refusal path allocates nothing either.
	now := int64(0)
	f := testFilter(t, testConfig("ip", 1, time.Hour, 0), &now)
	c := enginetest.NewCtx(t, "GET", "/")
	f.OnRequest(c)
	f.OnResponse(c)
	if n := testing.AllocsPerRun(1000, func() {
		if f.OnRequest(c) != engine.Respond {
			panic("admitted")
		}
		f.OnResponse(c)
	}); n != 0 {
		t.Errorf("refusal: %v allocations, want 0", n)
	}
}

func benchFilter(b *testing.B, key string) {
	f, c := hotPathFilter(b, key)
	onePass(f, c)
	b.ReportAllocs()
	loopCPU(b, func() { onePass(f, c) })
}

func BenchmarkFilterIP(b *testing.B)     { benchFilter(b, "ip") }
func BenchmarkFilterHeader(b *testing.B) { benchFilter(b, "header:X-Api-Key") }

// BenchmarkDecisionIP and BenchmarkDecisionHeader measure the local decision: the request phase
// (key, hash, shard, GCRA, metrics) and, for a header key, the outcome it carries.
func BenchmarkDecisionIP(b *testing.B)     { benchDecision(b, "ip") }
func BenchmarkDecisionHeader(b *testing.B) { benchDecision(b, "header:X-Api-Key") }

func benchDecision(b *testing.B, key string) {
	f, c := hotPathFilter(b, key)
	onePass(f, c)
	b.ReportAllocs()
	loopCPU(b, func() {
		if f.OnRequest(c) != engine.Continue {
			panic("refused")
		}
		// What the response phase does with a carried outcome, less writing the fields.
		if o := f.pop(c); o != nil {
			outcomePool.Put(o)
		}
	})
}

var errClientClosed = redis.ErrClosed

// TestConfigLifecycle builds a whole configuration with two pipelines whose rate_limit filters
// name one redis block: they share one client, which closes when the configuration is retired;
// validating the same configuration creates none.
func TestConfigLifecycle(t *testing.T) {
	reg := engine.NewRegistry()
	Register(reg)
	engine.RegisterUpstream(reg, func(string, *struct{}, *engine.BuildEnv) (engine.Upstream, error) {
		return engine.TerminalFunc(enginetest.OK), nil
	})
	rc := &engine.RedisConfig{Name: "main", Address: "127.0.0.1:1", Timeout: engine.Duration(50 * time.Millisecond)}
	filter := func() engine.FilterSpec {
		cfg := testConfig("ip", 10, time.Second, 0)
		cfg.Store = "main"
		return engine.FilterSpec{Kind: "rate_limit", Config: cfg}
	}
	spec := &engine.Spec{
		Redis:     map[string]*engine.RedisConfig{"main": rc},
		Upstreams: []engine.UpstreamSpec{{Name: "u", Config: &struct{}{}}},
		Pipelines: []engine.PipelineSpec{
			{Name: "a", Match: engine.MatchConfig{PathPrefix: "/a/"}, Filters: []engine.FilterSpec{filter()}, Upstream: "u"},
			{Name: "b", Match: engine.MatchConfig{PathPrefix: "/b/"}, Filters: []engine.FilterSpec{filter()}, Upstream: "u"},
		},
	}
	refs := func() int {
		clientsMu.Lock()
		defer clientsMu.Unlock()
		if sc, ok := clients[rc]; ok {
			return sc.refs
		}
		return 0
	}

	if _, errs := engine.Build(spec, reg, engine.BuildOptions{Logger: quiet, Validating: true}); errs != nil {
		t.Fatal(errs[0])
	}
	if n := refs(); n != 0 {
		t.Fatalf("validating made a client (%d references)", n)
	}

	gw, errs := engine.Build(spec, reg, engine.BuildOptions{Logger: quiet})
	if errs != nil {
		t.Fatal(errs[0])
	}
	if n := refs(); n != 2 {
		t.Fatalf("two filters on one block: %d references to its client, want one client shared twice", n)
	}
	clientsMu.Lock()
	sc := clients[rc]
	clientsMu.Unlock()
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	if n := refs(); n != 0 {
		t.Errorf("after the configuration was retired: %d references", n)
	}
	if err := sc.client.Ping(t.Context()).Err(); !errors.Is(err, errClientClosed) {
		t.Errorf("client still open after the configuration was retired: %v", err)
	}
}

// removeHeader is a later filter that strips a request header before the upstream sees it.
type removeHeader string

func (r removeHeader) OnRequest(c *engine.Ctx) engine.Verdict {
	c.Request.Header.Del(string(r))
	return engine.Continue
}
func (removeHeader) OnResponse(*engine.Ctx) {}

// TestFieldsWhenKeyHeaderRemoved: the key header is gone by the response phase; RateLimit still
// reports the key's count, not the anonymous key's.
func TestFieldsWhenKeyHeaderRemoved(t *testing.T) {
	now := int64(0)
	f := testFilter(t, testConfig("header:X-Api-Key", 10, time.Minute, 4), &now) // T = 6s, burst 5
	var got []string
	for range 3 {
		c := enginetest.NewCtx(t, "GET", "/", "X-Api-Key", "k1")
		enginetest.Serve(c, enginetest.OK, f, removeHeader("X-Api-Key"))
		got = append(got, string(c.Response.Header.Peek("RateLimit")))
	}
	// Three at once: 4, 3, then 2 more may follow at once; the whole burst is back 6, 12, 18s later.
	want := []string{`"default";r=4;t=6`, `"default";r=3;t=12`, `"default";r=2;t=18`}
	if !equal(got, want) {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	// The anonymous key was never charged.
	c := enginetest.NewCtx(t, "GET", "/")
	enginetest.Serve(c, enginetest.OK, f)
	if got := string(c.Response.Header.Peek("RateLimit")); got != `"default";r=4;t=6` {
		t.Errorf("anonymous key: RateLimit %q, want a fresh budget", got)
	}
}

func TestAppendInt(t *testing.T) {
	vs := []int64{0, 1, 9, 10, 99, 100, 12345, 99999, 100000, 1 << 30, 1<<63 - 1, -1, -10, -1 << 63}
	for p := int64(10); p > 0 && p <= 1e18; p *= 10 { // each digit count's edges
		vs = append(vs, p-1, p, p+1)
	}
	for v := range int64(1 << 12) { // every bit length's edges, and small numbers
		vs = append(vs, v, 1<<(v%63), 1<<(v%63)-1)
	}
	for _, v := range vs {
		if got, want := string(appendInt([]byte("x"), v)), strconv.AppendInt([]byte("x"), v, 10); got != string(want) {
			t.Errorf("appendInt(%d) = %q, want %q", v, got, want)
		}
	}
}

// TestIPKey: IPv4 clients are keyed by their address (each its own key, the IPv4-mapped form the
// same as the plain one), IPv6 clients by a hash, and no key is the anonymous one's.
func TestIPKey(t *testing.T) {
	now := int64(0)
	f := testFilter(t, testConfig("ip", 10, time.Second, 0), &now)
	key := func(s string) uint64 {
		c := enginetest.NewCtx(t, "GET", "/")
		c.ClientAddr = netip.Addr{}
		if s != "" {
			c.ClientAddr = netip.MustParseAddr(s)
		}
		return f.localHash(c)
	}
	if key("") != f.anonHash {
		t.Error("no address: not the anonymous key")
	}
	if key("192.0.2.1") != key("::ffff:192.0.2.1") {
		t.Error("IPv4 and IPv4-mapped addresses have different keys")
	}
	seen := map[uint64]string{f.anonHash: "anonymous"}
	for _, s := range []string{"0.0.0.0", "0.0.0.1", "192.0.2.1", "192.0.2.2", "255.255.255.255", "::", "::1",
		"2001:db8::1", "2001:db8::2", "::c000:201", "fe80::1%eth0"} {
		k := key(s)
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s share a key", s, prev)
		}
		seen[k] = s
	}
	// Consecutive IPv4 addresses spread over the store's shards (the key's top bits).
	shards := map[uint64]bool{}
	for i := range 256 {
		shards[key(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}).String())>>(64-shardBits)] = true
	}
	if len(shards) != numShards {
		t.Errorf("256 consecutive addresses fall in %d shards", len(shards))
	}
}

// BenchmarkFilterIPParallel: both phases from every P at once, one client address (one shard, as
// in the bench row, where every request comes from 127.0.0.1).
func BenchmarkFilterIPParallel(b *testing.B) {
	f, _ := hotPathFilter(b, "ip")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := enginetest.NewCtx(b, "GET", "/v1/items")
		onePass(f, c)
		for pb.Next() {
			onePass(f, c)
		}
	})
}
