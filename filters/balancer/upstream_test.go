package balancer

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func validConfig(targets ...string) *Config {
	c := &Config{}
	c.SetDefaults()
	for _, a := range targets {
		tc := TargetConfig{Address: a}
		tc.SetDefaults()
		c.Targets = append(c.Targets, tc)
	}
	return c
}

func TestValidate(t *testing.T) {
	bad := func(mut func(c *Config)) []string {
		c := validConfig("127.0.0.1:1")
		mut(c)
		var fields []string
		for _, e := range engine.FieldErrors(c.Validate()) {
			fe, ok := engine.AsFieldError(e)
			if !ok {
				t.Errorf("%v is not a field error", e)
				continue
			}
			fields = append(fields, fe.Field)
		}
		return fields
	}
	cases := []struct {
		name string
		mut  func(c *Config)
		want string
	}{
		{"unknown policy", func(c *Config) { c.Policy = "fastest" }, "policy"},
		{"hash_on without a hash policy", func(c *Config) { c.HashOn = "ip" }, "hash_on"},
		{"bad hash_on", func(c *Config) { c.Policy = "maglev"; c.HashOn = "query:x" }, "hash_on"},
		{"no target", func(c *Config) { c.Targets = nil }, "target"},
		{"bad retry condition", func(c *Config) { c.Retry = &RetryConfig{On: []string{"sometimes"}} }, "retry.on"},
		{"too many attempts", func(c *Config) { n := 9; c.Retry = &RetryConfig{Attempts: &n} }, "retry.attempts"},
		{"budget over 100", func(c *Config) { n := 101; c.Retry = &RetryConfig{BudgetPercent: &n} }, "retry.budget_percent"},
		{"ejection percent", func(c *Config) {
			n := 150
			c.OutlierDetection = &OutlierDetectionConfig{MaxEjectionPercent: &n}
		}, "outlier_detection.max_ejection_percent"},
		{"health path", func(c *Config) { c.HealthCheck = &HealthCheckConfig{Path: "healthz"} }, "health_check.path"},
		{"expect status", func(c *Config) { c.HealthCheck = &HealthCheckConfig{ExpectStatus: []int{42}} }, "health_check.expect_status"},
		{"max_requests 0", func(c *Config) { n := 0; c.CircuitBreaker = &CircuitBreakerConfig{MaxRequests: &n} }, "circuit_breaker.max_requests"},
		{"max_pending negative", func(c *Config) { n := -1; c.CircuitBreaker = &CircuitBreakerConfig{MaxPending: &n} }, "circuit_breaker.max_pending"},
		{"max_retries huge", func(c *Config) { n := 1 << 30; c.CircuitBreaker = &CircuitBreakerConfig{MaxRetries: &n} }, "circuit_breaker.max_retries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := bad(tc.mut)
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("errors on %v, want exactly one on %s", got, tc.want)
			}
		})
	}
	if fields := bad(func(c *Config) { c.Policy = "ring_hash"; c.HashOn = "claim:realm.user" }); len(fields) != 0 {
		t.Errorf("ring_hash with claim:realm.user: %v", fields)
	}
	tcs := []TargetConfig{{Address: "nohost", Weight: 1}, {Address: "h:1", Weight: 0}, {Address: "h:1", Weight: 1, CAFile: "ca.pem"}}
	for _, tc := range tcs {
		if err := tc.Validate(); err == nil {
			t.Errorf("target %+v accepted", tc)
		}
	}
}

func build(t *testing.T, name string, cfg *Config) *Upstream {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	u, err := Build(name, cfg, &engine.BuildEnv{})
	if err != nil {
		t.Fatal(err)
	}
	return u.(*Upstream)
}

// TestHealthSurvivesReload builds the same upstream twice, as a reload does, and checks that
// the second sees the health the first recorded, until both are closed.
func TestHealthSurvivesReload(t *testing.T) {
	old := build(t, "reload", validConfig("127.0.0.1:1", "127.0.0.1:2"))
	now := time.Now().UnixNano()
	st := old.set.Load().targets[0].st
	st.ejectedUntil.Store(now + int64(time.Hour))
	st.ejections.Store(2)
	old.set.Load().targets[1].st.healthy.Store(false)

	// The new config keeps 127.0.0.1:1, drops :2 and adds :3.
	next := build(t, "reload", validConfig("127.0.0.1:1", "127.0.0.1:3"))
	old.Close()
	ts := next.set.Load().targets
	if got := ts[0].st; got != st || got.ejections.Load() != 2 || got.available(now) {
		t.Errorf("the ejection of 127.0.0.1:1 was lost in the reload")
	}
	if !ts[1].st.available(now) {
		t.Errorf("the new target 127.0.0.1:3 starts unavailable")
	}
	// Another upstream with the same address has its own state.
	other := build(t, "other", validConfig("127.0.0.1:1"))
	if !other.set.Load().targets[0].st.available(now) {
		t.Error("health leaked between upstreams")
	}
	other.Close()
	next.Close()
	states.Lock()
	n := len(states.m)
	for k := range states.m {
		if k.upstream == "reload" || k.upstream == "other" {
			t.Errorf("state %v kept after every upstream using it closed", k)
		}
	}
	states.Unlock()
	_ = n
}

func TestOutlierEjection(t *testing.T) {
	cfg := validConfig("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
	pct := 50
	cfg.OutlierDetection = &OutlierDetectionConfig{ConsecutiveFailures: 3, BaseEjectionTime: engine.Duration(time.Second), MaxEjectionPercent: &pct}
	u := build(t, "outlier", cfg)
	defer u.Close()
	ts := u.set.Load().targets
	now := time.Now().UnixNano()
	fail := func(t0 *target, n int, at int64) {
		for i := 0; i < n; i++ {
			u.onFailure(t0, at)
		}
	}
	fail(ts[0], 2, now)
	if !ts[0].st.available(now) {
		t.Fatal("ejected before consecutive_failures")
	}
	u.onSuccess(ts[0], now)
	fail(ts[0], 2, now)
	if !ts[0].st.available(now) {
		t.Fatal("a success must reset the consecutive count")
	}
	ts[0].st.observeLatency(time.Second, now)
	fail(ts[0], 1, now)
	if ts[0].st.available(now) {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	if ts[0].st.latency() != 0 {
		t.Error("an ejected target keeps its latency penalty: p2c_ewma would starve it once back")
	}
	if got := time.Duration(ts[0].st.ejectedUntil.Load() - now); got != time.Second {
		t.Errorf("first ejection lasts %v, want base_ejection_time 1s", got)
	}
	// Ejected again right after it came back: the time doubles.
	later := now + int64(time.Second) + 1
	fail(ts[0], 3, later)
	if got := time.Duration(ts[0].st.ejectedUntil.Load() - later); got != 2*time.Second {
		t.Errorf("second ejection lasts %v, want 2s", got)
	}
	// max_ejection_percent 50 of 4 targets: a second target may go, a third may not.
	fail(ts[1], 3, later)
	fail(ts[2], 3, later)
	if ts[1].st.available(later) || !ts[2].st.available(later) {
		t.Errorf("max_ejection_percent: target 1 available=%v (want ejected), target 2 available=%v (want kept)",
			ts[1].st.available(later), ts[2].st.available(later))
	}
	s := u.Status().(Status)
	if s.Targets[0].EjectedUntil == nil || s.Targets[0].Ejections != 2 || s.Targets[0].RecentFailures == 0 {
		t.Errorf("status does not show the ejection: %+v", s.Targets[0])
	}
	if !u.Healthy() {
		t.Error("Healthy() with two targets available")
	}
}

func TestRetryBudgetWindow(t *testing.T) {
	b := retryBudget{pct: 10}
	now := time.Now().UnixNano()
	for i := 0; i < 1000; i++ {
		b.onRequest(now)
	}
	allowed := 0
	for i := 0; i < 1000; i++ {
		if b.allow(now) {
			allowed++
		}
	}
	if allowed != 100+budgetMinRetries {
		t.Errorf("%d retries allowed for 1000 requests at 10%%, want %d", allowed, 100+budgetMinRetries)
	}
	// Eleven seconds later the window has forgotten them.
	later := now + 11*int64(time.Second)
	if !b.allow(later) {
		t.Error("budget not renewed after the window")
	}
	if (&retryBudget{pct: 0}).allow(now) {
		t.Error("budget_percent 0 allows retries")
	}
}

func TestHashOnKeys(t *testing.T) {
	for _, s := range []string{"ip", "path", "header:X-User", "cookie:sid", "claim:sub"} {
		if _, err := parseHashOn(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"header:", "query:x", "ipv6"} {
		if _, err := parseHashOn(s); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	if err := errors.Join(nil); err != nil || strings.Contains("", "x") {
		t.Fatal()
	}
}

func TestValidatingBuildStartsNothing(t *testing.T) {
	cfg := validConfig("name.invalid:80")
	cfg.HealthCheck = &HealthCheckConfig{}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	u, err := Build("validating", cfg, &engine.BuildEnv{Validating: true})
	if err != nil {
		t.Fatal(err)
	}
	up := u.(*Upstream)
	if n := len(up.set.Load().targets); n != 0 {
		t.Errorf("validating build made %d targets", n)
	}
	up.Close()
	// A missing ca_file is an error under validate too.
	cfg = validConfig("127.0.0.1:443")
	cfg.Targets[0].TLS, cfg.Targets[0].CAFile = true, "/nonexistent/ca.pem"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Build("validating", cfg, &engine.BuildEnv{Validating: true}); err == nil {
		t.Error("a missing ca_file passed validation")
	}
}

func TestHashKeysPickStableTargets(t *testing.T) {
	for _, tc := range []struct {
		hashOn string
		set    func(c *engine.Ctx, v string)
	}{
		{"header:X-User", func(c *engine.Ctx, v string) { c.Request.Header.Set("X-User", v) }},
		{"cookie:sid", func(c *engine.Ctx, v string) { c.Request.Header.SetCookie("sid", v) }},
		{"claim:realm.user", func(c *engine.Ctx, v string) {
			engine.ClaimsKey.Set(c, engine.Claims{"realm": map[string]any{"user": v}})
		}},
		{"path", func(c *engine.Ctx, v string) { c.Path = append(c.Path[:0], "/u/"+v...) }},
		{"ip", func(c *engine.Ctx, v string) { c.ClientAddr = netip.MustParseAddr("10.1.2." + strconv.Itoa(len(v))) }},
	} {
		t.Run(tc.hashOn, func(t *testing.T) {
			h, err := parseHashOn(tc.hashOn)
			if err != nil {
				t.Fatal(err)
			}
			key := func(v string) (uint64, bool) {
				c := enginetest.NewCtx(t, "GET", "/x")
				if v != "" {
					tc.set(c, v)
				}
				return h.key(c)
			}
			a1, ok1 := key("alice")
			a2, ok2 := key("alice")
			b, _ := key("bobby-the-second")
			if !ok1 || !ok2 || a1 != a2 || a1 == b {
				t.Errorf("keys alice=%x/%x (%v %v), bob=%x: want equal for equal values, different otherwise", a1, a2, ok1, ok2, b)
			}
			if tc.hashOn != "path" && tc.hashOn != "ip" {
				if _, ok := key(""); ok {
					t.Error("a request without the value has a key")
				}
			}
		})
	}
	h, _ := parseHashOn("header:X-User")
	c := enginetest.NewCtx(t, "GET", "/x", "X-User", "alice")
	if allocs := testing.AllocsPerRun(100, func() { h.key(c) }); allocs != 0 && !raceEnabled {
		t.Errorf("hashing a header allocates %v", allocs)
	}
}
