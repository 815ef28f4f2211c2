package wasm

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/valyala/fasthttp"
)

var (
	mBreakerRejected = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{Name: "sluice_wasm_breaker_rejected_total", Help: "Requests answered without calling the guest because the filter's circuit breaker was open."}, labels)
	mLogSuppressed   = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{Name: "sluice_wasm_log_suppressed_total", Help: "Guest log lines and failure log lines not logged, over log_lines_per_second."}, labels)
)

var errBreakerOpen = errors.New("circuit breaker open: the guest failed breaker_failures times within breaker_window; not called during breaker_cooldown")

// breaker is a filter's circuit breaker. Closed, it lets every request through and counts guest
// failures in a fixed window; breaker_failures of them open it. Open, requests are answered
// without the guest until the cooldown ends; then one request at a time is let through as a
// probe (another one each cooldown if the probe never reports back), and the first success
// closes it while a failure opens it for another cooldown. A closed breaker costs a request one
// atomic load.
type breaker struct {
	f         *Filter
	threshold int
	window    time.Duration
	cooldown  time.Duration
	rejected  prometheus.Counter
	// err is the failure of a rejected request, made once.
	err error

	open atomic.Bool
	// until is when the current cooldown or probe lease ends (Unix nanoseconds).
	until atomic.Int64

	mu          sync.Mutex
	failures    int
	windowStart time.Time
}

func (b *breaker) init(f *Filter, threshold int, window, cooldown time.Duration, rejected prometheus.Counter) {
	b.f, b.threshold, b.window, b.cooldown, b.rejected = f, threshold, window, cooldown, rejected
	b.err = fmt.Errorf("wasm filter %s: %w", f.label, errBreakerOpen)
}

// allow reports whether a request may call the guest.
func (b *breaker) allow() bool {
	if !b.open.Load() {
		return true
	}
	now := time.Now().UnixNano()
	until := b.until.Load()
	// The first request after the cooldown takes the probe lease; the rest wait for its verdict.
	if now >= until && b.until.CompareAndSwap(until, now+int64(b.cooldown)) {
		return true
	}
	b.rejected.Inc()
	return false
}

// succeeded closes an open breaker: the probe got through.
func (b *breaker) succeeded() {
	if !b.open.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open.Swap(false) {
		b.failures = 0
		b.f.log.Info("wasm circuit breaker closed: the probe request succeeded", "module", b.f.module)
	}
}

// failed counts a guest failure and opens the breaker at the threshold (or again, for a probe).
func (b *breaker) failed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.open.Load() {
		// The probe failed (or a request let in before the breaker opened): another cooldown.
		b.until.Store(now.Add(b.cooldown).UnixNano())
		return
	}
	if now.Sub(b.windowStart) > b.window {
		b.windowStart, b.failures = now, 0
	}
	b.failures++
	if b.failures < b.threshold {
		return
	}
	b.until.Store(now.Add(b.cooldown).UnixNano())
	b.open.Store(true)
	b.f.log.Warn("wasm circuit breaker open: the guest is not called during the cooldown",
		"module", b.f.module, "failures", b.failures, "window", b.window, "cooldown", b.cooldown)
}

// rejectOpen answers a request the open breaker keeps from the guest, as on_error says. It is
// what a trap storm costs once the breaker is open, so it allocates nothing unless it logs.
func (f *Filter) rejectOpen(c *engine.Ctx) engine.Verdict {
	c.AddFlags(engine.FlagCircuitOpen)
	if f.lim.failLog.allow() {
		f.log.Warn("wasm request answered without the guest", "module", f.module, "err", errBreakerOpen, "on_error", f.onError())
	}
	if f.skip {
		return engine.Continue
	}
	return c.Fail(fasthttp.StatusServiceUnavailable, f.lim.breaker.err)
}

func (f *Filter) onError() string {
	if f.skip {
		return "skip"
	}
	return "deny"
}
