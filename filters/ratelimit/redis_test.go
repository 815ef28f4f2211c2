package ratelimit

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/filters/ratelimit/redistest"
)

// redisFilter builds a filter on a fresh redis block (its own client and outage state) at addr.
func redisFilter(t testing.TB, cfg *Config, addr, password string, timeout time.Duration, log *slog.Logger) *Filter {
	t.Helper()
	if log == nil {
		log = quiet
	}
	cfg.Store = "main"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rc := &engine.RedisConfig{Name: "main", Address: addr, Password: password, Timeout: engine.Duration(timeout)}
	f, err := build(cfg, &engine.BuildEnv{Pipeline: t.Name(), Logger: log, Redis: map[string]*engine.RedisConfig{"main": rc}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.(*Filter).Close() })
	return f.(*Filter)
}

// TestRedisScriptMatchesLocal drives the Lua script's clock and checks that it decides exactly
// as the local store does, request by request, on the arrival patterns of the window tests.
func TestRedisScriptMatchesLocal(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		limit, burst int
		period       time.Duration
	}{
		{10, 0, time.Second}, {7, 0, time.Second}, {100, 20, time.Minute}, {3, 2, 10 * time.Second},
	}
	for n, tt := range tests {
		f := redisFilter(t, testConfig("route", tt.limit, tt.period, tt.burst), srv.Addr, "", time.Second, nil)
		key := f.remote.prefix + strconv.Itoa(n)
		g := newGCRA(tt.limit, tt.period, tt.burst+1, time.Microsecond)
		if f.remote.g != g {
			t.Fatalf("Redis GCRA %+v, want %+v", f.remote.g, g)
		}
		local := newLocalStore(g, 0)
		rng := rand.New(rand.NewPCG(uint64(tt.limit), uint64(tt.burst)))
		// A realistic epoch in microseconds: the script must keep them exact.
		now := time.Now().UnixMicro()
		admitted := 0
		for i := range 300 {
			now += rng.Int64N(g.interval + g.interval/2) // 0.75 T on average: overloaded
			wantOK, wantAhead := local.take(1, now)
			ok, ahead, err := f.remote.takeAt(t.Context(), key, &now)
			if err != nil {
				t.Fatal(err)
			}
			if ok != wantOK || ahead != wantAhead {
				t.Fatalf("%d/%v burst %d, request %d: Redis (%v, %d), local (%v, %d)", tt.limit, tt.period, tt.burst, i, ok, ahead, wantOK, wantAhead)
			}
			if ok {
				admitted++
			}
		}
		if admitted == 0 || admitted == 300 {
			t.Errorf("%d/%v: %d of 300 admitted, the run tests nothing", tt.limit, tt.period, admitted)
		}
	}
}

// TestRedisDecisions: a burst of 5, the 6th refused, on Redis' own clock. The period is an hour
// (T = 6 min), so that nothing refills while the six requests run, however slow the machine
// (with 10 per second, six requests taking over 100ms got the 6th admitted).
func TestRedisDecisions(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Password: "s3cret"})
	f := redisFilter(t, testConfig("header:X-Api-Key", 10, time.Hour, 4), srv.Addr, "s3cret", time.Second, nil)
	var got []result
	for range 6 {
		got = append(got, serve(t, f, nil, "X-Api-Key", "tenant-a"))
	}
	for i, r := range got[:5] {
		if r.status != 200 {
			t.Errorf("burst request %d: status %d, want 200", i+1, r.status)
		}
		if len(r.rateLimit) != 1 {
			t.Errorf("burst request %d: RateLimit %q", i+1, r.rateLimit)
		}
	}
	// TAT is 5T = 30 min ahead, tau = 4T: the next request conforms in T = 360s (a few ms less).
	if got[5].status != 429 || got[5].retryAfter != "360" || !equal(got[5].rateLimit, []string{`"default";r=0;t=360`}) {
		t.Errorf("request 6: %+v, want 429, Retry-After 360, r=0", got[5])
	}
	if !equal(got[0].policy, []string{`"default";q=10;w=3600;sluice-burst=5`}) {
		t.Errorf("policy %q", got[0].policy)
	}
	// Another key has its own budget; the TTL keeps Redis clean.
	if r := serve(t, f, nil, "X-Api-Key", "tenant-b"); r.status != 200 {
		t.Errorf("tenant-b: status %d", r.status)
	}
	ttl, err := f.remote.sc.client.PTTL(t.Context(), f.remote.prefix+"h:=tenant-a").Result()
	if err != nil || ttl <= 25*time.Minute || ttl > 30*time.Minute {
		t.Errorf("key TTL = %v (%v), want about 30min: TAT - now", ttl, err)
	}
}

func TestRedisWrongPassword(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Password: "right"})
	cfg := testConfig("ip", 10, time.Second, 0)
	cfg.OnStoreError = "deny"
	f := redisFilter(t, cfg, srv.Addr, "wrong", time.Second, nil)
	if r := serve(t, f, nil); r.status != 503 {
		t.Errorf("wrong password: status %d, want 503 (store unavailable, deny)", r.status)
	}
}

// TestRedisOutage covers each on_store_error mode against a Redis that is killed (connections
// refused) and one that hangs (SIGSTOP: connected, never answering): only the first request
// after the failure waits on Redis (at most the timeout, which the command's context enforces),
// the others are decided without trying it until a probe is due, the outage and the mode are
// logged once, each fallback decision is counted, and limiting through Redis resumes once it is
// back. The breaker's clock is driven, so no probe falls due while the 20 requests run, however
// slowly a loaded machine runs them (the wall-clock version raced: a request or a probe landing
// late on a machine with load 16 failed the test).
func TestRedisOutage(t *testing.T) {
	// Only the one request that finds Redis hung waits this long. It must also cover a request
	// to a live Redis on a machine with load 24 (100ms did not: the decision before the outage
	// timed out now and then).
	const timeout = time.Second
	for _, mode := range []string{"allow", "deny", "local"} {
		for _, failure := range []string{"kill", "hang"} {
			t.Run(mode+"/"+failure, func(t *testing.T) {
				srv := redistest.Start(t)
				logs := &enginetest.LogBuffer{}
				log := slog.New(slog.NewTextHandler(logs, nil))
				cfg := testConfig("ip", 2, time.Minute, 0)
				cfg.OnStoreError = mode
				f := redisFilter(t, cfg, srv.Addr, "", timeout, log)
				var clock atomic.Int64
				f.remote.sc.clock = clock.Load
				// Dial and load the script with time to spare, so that the decision below is one
				// round trip.
				if err := gcraScript.Load(t.Context(), f.remote.sc.client).Err(); err != nil {
					t.Fatal(err)
				}
				if r := serve(t, f, nil); r.status != 200 || len(r.rateLimit) != 1 {
					t.Fatalf("before the outage: %+v", r)
				}

				if failure == "kill" {
					srv.Kill()
				} else {
					srv.Pause()
					defer srv.Kill()
				}
				before := metricValue(f.mStoreError)
				errorsBefore := metricValue(f.remote.sc.mErrors)
				var statuses []int
				for range 20 {
					r := serve(t, f, nil)
					statuses = append(statuses, r.status)
					if mode != "local" && len(r.rateLimit) != 0 {
						t.Errorf("mode %s: RateLimit %q without a known count", mode, r.rateLimit)
					}
					if mode == "deny" && r.retryAfter != "1" {
						t.Errorf("deny: Retry-After %q, want 1", r.retryAfter)
					}
				}
				// One request found Redis gone; the 19 after it never tried (no probe was due).
				if n := metricValue(f.remote.sc.mErrors) - errorsBefore; n != 1 {
					t.Errorf("%v requests tried Redis while it was marked down, want only the first", n)
				}
				switch mode {
				case "allow":
					for i, s := range statuses {
						if s != 200 {
							t.Errorf("allow: request %d got %d", i, s)
						}
					}
				case "deny":
					for i, s := range statuses {
						if s != 503 {
							t.Errorf("deny: request %d got %d", i, s)
						}
					}
				case "local":
					// A fresh local count of 2 per minute (one per 30s): one admitted, then refused.
					for i, s := range statuses {
						if want := map[bool]int{true: 200, false: 429}[i == 0]; s != want {
							t.Errorf("local: request %d got %d, want %d", i, s, want)
						}
					}
				}
				if n := metricValue(f.mStoreError) - before; n != 20 {
					t.Errorf("store error decisions counted %v, want 20", n)
				}
				out := logs.String()
				if n := strings.Count(out, "rate limit store unreachable"); n != 1 {
					t.Errorf("outage logged %d times, want once:\n%s", n, out)
				}
				if n := strings.Count(out, "applying on_store_error"); n != 1 || !strings.Contains(out, "mode="+mode) {
					t.Errorf("mode logged %d times, want once with mode=%s:\n%s", n, mode, out)
				}

				// Back: limiting goes through Redis again (its count started over). Each try is a
				// probe: the clock moves on by a probe interval every time.
				if failure == "kill" {
					srv.Restart()
				} else {
					srv.Resume()
				}
				for try := 1; ; try++ {
					clock.Add(int64(probeEvery))
					// An answer is what counts, admitted or not: a probe that timed out on a slow
					// machine may still have run, and spent the probe key's budget.
					_, _, err := f.remote.take(t.Context(), f.remote.prefix+"probe")
					if err == nil {
						break
					}
					if try == 100 {
						t.Fatalf("Redis back, but %d probes failed, the last with %v", try, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
				if !strings.Contains(logs.String(), "reachable again") {
					t.Error("recovery not logged")
				}
				if metricValue(f.remote.sc.mUp) != 1 {
					t.Error("redis_up gauge not back to 1")
				}
			})
		}
	}
}

// BenchmarkRedisDecision measures one decision through the filter against a local redis-server
// (the script, the key, the pool; loopback network).
func BenchmarkRedisDecision(b *testing.B) {
	srv := redistest.Start(b)
	f := redisFilter(b, testConfig("ip", 1_000_000, time.Second, 1<<30-1), srv.Addr, "", time.Second, nil)
	c := enginetest.NewCtx(b, "GET", "/")
	b.ReportAllocs()
	for b.Loop() {
		if f.OnRequest(c) != engine.Continue {
			b.Fatal("refused")
		}
		f.OnResponse(c)
		c.Response.Reset()
	}
}

// BenchmarkRedisDecisionParallel is the same from many goroutines sharing the pool.
func BenchmarkRedisDecisionParallel(b *testing.B) {
	srv := redistest.Start(b)
	f := redisFilter(b, testConfig("ip", 1_000_000, time.Second, 1<<30-1), srv.Addr, "", time.Second, nil)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ok, _, err := f.remote.take(context.Background(), f.remote.prefix+"k")
			if err != nil || !ok {
				b.Error(ok, err)
				return
			}
		}
	})
}

// metricValue reads a counter's or gauge's current value.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestBreaker: while down, one request per probe interval may try Redis; only a probe's success
// ends the outage, and each outage is one epoch (one log line per filter).
func TestBreaker(t *testing.T) {
	rc := &engine.RedisConfig{Name: "breaker", Address: "127.0.0.1:1", Timeout: engine.Duration(50 * time.Millisecond)}
	sc := acquireClient(rc, quiet)
	defer sc.release()
	if ok, probe := sc.usable(monoNow()); !ok || probe {
		t.Fatal("up: every request should use Redis, none as a probe")
	}
	sc.failed(errStoreDown)
	sc.failed(errStoreDown) // a second in-flight failure is the same outage
	if sc.epoch.Load() != 1 || !sc.down.Load() {
		t.Fatalf("epoch %d, down %v after one outage", sc.epoch.Load(), sc.down.Load())
	}
	now := monoNow()
	if ok, _ := sc.usable(now); ok {
		t.Error("down: a request right after the failure may use Redis")
	}
	later := now + int64(probeEvery)
	ok1, probe := sc.usable(later)
	ok2, _ := sc.usable(later)
	if !ok1 || !probe || ok2 {
		t.Errorf("at the probe time: first (%v, probe %v), second %v; want exactly one probe", ok1, probe, ok2)
	}
	sc.succeeded(false)
	if !sc.down.Load() {
		t.Error("a late answer to a command sent before the outage ended it")
	}
	sc.succeeded(true)
	if sc.down.Load() || metricValue(sc.mUp) != 1 {
		t.Error("the probe's success did not end the outage")
	}
	sc.failed(errStoreDown)
	if sc.epoch.Load() != 2 {
		t.Errorf("a new outage is epoch %d, want 2", sc.epoch.Load())
	}
}
