package wasm

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/wasm/interrupt"
	"github.com/tetratelabs/wazero/sys"
)

// Defaults of the limits every guest runs under (see Config).
const (
	defaultTimeout         = time.Second
	defaultLoadTimeout     = 10 * time.Second
	defaultMaxCallDepth    = interrupt.DefaultMaxCallDepth
	maxMaxCallDepth        = 100_000
	defaultBreakerFailures = 20
	defaultBreakerWindow   = 10 * time.Second
	defaultBreakerCooldown = 5 * time.Second
	defaultLogLines        = 100
	// defaultMaxBody bounds guest-written bodies when the server sets no limit of its own.
	defaultMaxBody = 64 << 20
)

func (c *Config) setLimitDefaults() {
	c.Timeout = engine.Duration(defaultTimeout)
	c.LoadTimeout = engine.Duration(defaultLoadTimeout)
	c.MaxCallDepth = defaultMaxCallDepth
	c.BreakerFailures = defaultBreakerFailures
	c.BreakerWindow = engine.Duration(defaultBreakerWindow)
	c.BreakerCooldown = engine.Duration(defaultBreakerCooldown)
	c.LogLinesPerSecond = defaultLogLines
}

func (c *Config) validateLimits() []error {
	var errs []error
	if c.Timeout <= 0 && !c.UnlimitedTime {
		errs = append(errs, engine.FieldErr("timeout", `must be positive; for no time limit set unlimited_time = true`))
	}
	if c.LoadTimeout <= 0 {
		errs = append(errs, engine.FieldErr("load_timeout", "must be positive"))
	}
	if c.MaxCallDepth < 1 || c.MaxCallDepth > maxMaxCallDepth {
		errs = append(errs, engine.FieldErr("max_call_depth", "must be between 1 and %d, got %d", maxMaxCallDepth, c.MaxCallDepth))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, engine.FieldErr("max_body_bytes", "must not be negative"))
	}
	if c.BreakerFailures < 1 {
		errs = append(errs, engine.FieldErr("breaker_failures", "must be at least 1"))
	}
	if c.BreakerWindow <= 0 {
		errs = append(errs, engine.FieldErr("breaker_window", "must be positive"))
	}
	if c.BreakerCooldown <= 0 {
		errs = append(errs, engine.FieldErr("breaker_cooldown", "must be positive"))
	}
	if c.LogLinesPerSecond < 1 {
		errs = append(errs, engine.FieldErr("log_lines_per_second", "must be at least 1"))
	}
	return errs
}

// Warnings reports the settings `sluice validate` warns about.
func (c *Config) Warnings() error {
	if c.UnlimitedTime {
		return engine.FieldErr("unlimited_time", "calls into this guest have no time limit: a guest that loops holds its request, "+
			"its instance and a CPU core until the filter is closed (reload or shutdown); prefer a timeout")
	}
	return nil
}

var (
	errCallDepth = errors.New("guest exceeded max_call_depth (nested calls)")
	errStopped   = errors.New("guest stopped: the filter was closed (reload or shutdown) while it ran")
)

// limits is the per-filter state of the limits beyond the timeout.
type limits struct {
	// unlimited: no per-call time limit (unlimited_time).
	unlimited   bool
	loadTimeout time.Duration
	maxDepth    uint32
	// maxReqBody and maxRespBody bound what write_body may write.
	maxReqBody, maxRespBody int
	// fallback: the module could not be instrumented; the runtime closes a module whose call
	// context is done (wazero's own checks), each call having a context of its own.
	fallback bool
	// closing is cancelled by Close: it stops guests that run without instrumentation.
	closing      context.Context
	cancelClosed context.CancelFunc

	// all holds every instance from instantiation until it is discarded, so that Close can
	// stop the ones still running.
	mu  sync.Mutex
	all map[*instance]struct{}

	breaker  breaker
	guestLog logLimiter // guest output: stdout, stderr, the log host function
	failLog  logLimiter // the host's lines about failed calls and rejected requests
}

func (f *Filter) initLimits(cfg *Config, env *engine.BuildEnv) {
	l := &f.lim
	l.unlimited = cfg.UnlimitedTime
	l.loadTimeout = cfg.LoadTimeout.D()
	l.maxDepth = uint32(cfg.MaxCallDepth)
	l.maxReqBody, l.maxRespBody = defaultMaxBody, defaultMaxBody
	if env.Server != nil {
		if env.Server.MaxBodyBytes > 0 {
			l.maxReqBody = int(env.Server.MaxBodyBytes)
		}
		if env.Server.MaxResponseBytes > 0 {
			l.maxRespBody = int(env.Server.MaxResponseBytes)
		}
	}
	if cfg.MaxBodyBytes > 0 {
		l.maxReqBody, l.maxRespBody = int(cfg.MaxBodyBytes), int(cfg.MaxBodyBytes)
	}
	l.closing, l.cancelClosed = context.WithCancel(context.Background())
	l.all = map[*instance]struct{}{}
	l.breaker.init(f, cfg.BreakerFailures, cfg.BreakerWindow.D(), cfg.BreakerCooldown.D(),
		mBreakerRejected.WithLabelValues(env.Pipeline, f.label))
	dropped := mLogSuppressed.WithLabelValues(env.Pipeline, f.label)
	l.guestLog.init(f, cfg.LogLinesPerSecond, "guest log lines suppressed (log_lines_per_second)", dropped)
	l.failLog.init(f, cfg.LogLinesPerSecond, "wasm failure log lines suppressed (log_lines_per_second)", dropped)
	if cfg.UnlimitedTime {
		f.timeout = 0
	}
}

// track registers a new instance, untrack forgets a discarded one.
func (f *Filter) track(in *instance) {
	f.lim.mu.Lock()
	f.lim.all[in] = struct{}{}
	f.lim.mu.Unlock()
}

func (f *Filter) untrack(in *instance) {
	f.lim.mu.Lock()
	delete(f.lim.all, in)
	f.lim.mu.Unlock()
}

// stopAll stops every guest still running, or about to run, on an instance of the closed
// filter: instrumented ones trap at their next check, the others are closed by wazero when their
// context is cancelled. The requests they serve fail with errStopped.
func (f *Filter) stopAll() {
	f.lim.cancelClosed()
	f.lim.mu.Lock()
	defer f.lim.mu.Unlock()
	for in := range f.lim.all {
		in.stopped.Store(true)
		if in.stop != nil {
			in.stop.Set(1)
		}
	}
}

// callError names why a call into the guest failed: the filter closed under it, the call depth
// limit, the time limit of a module without instrumentation; otherwise the guest's own error.
func (in *instance) callError(err error) error {
	switch {
	case in.stopped.Load():
		return errStopped
	case in.depth != nil && in.depth.Get() == 0:
		return errCallDepth
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return errTimeout
		case sys.ExitCodeContextCanceled:
			return errStopped
		}
	}
	return err
}

// guestFault reports whether err is the guest's doing (it counts towards the breaker), rather
// than the gateway's state (a full pool, a closed filter).
func guestFault(err error) bool {
	return !errors.Is(err, errPoolFull) && !errors.Is(err, errFilterClosed) && !errors.Is(err, errStopped)
}

// logLimiter is a token bucket of log lines: perSec a second, bursts of as many. Lines over it
// are counted, and the count is logged with the next line let through.
type logLimiter struct {
	f          *Filter
	what       string
	mu         sync.Mutex
	perSec     float64
	tokens     float64
	last       time.Time
	suppressed int64
	dropped    prometheus.Counter
}

func (l *logLimiter) init(f *Filter, perSec int, what string, dropped prometheus.Counter) {
	l.f, l.what, l.perSec, l.tokens, l.dropped = f, what, float64(perSec), float64(perSec), dropped
}

// allow reports whether a line may be logged now.
func (l *logLimiter) allow() bool {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() {
		l.tokens = min(l.perSec, l.tokens+now.Sub(l.last).Seconds()*l.perSec)
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		l.mu.Unlock()
		l.dropped.Inc()
		return false
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if n > 0 {
		l.f.log.Warn(l.what, "suppressed", n)
	}
	return true
}

// flushSuppressed logs the count of lines suppressed since the last one let through (at Close).
func (l *logLimiter) flushSuppressed() {
	l.mu.Lock()
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if n > 0 && l.f != nil {
		l.f.log.Warn(l.what, "suppressed", n)
	}
}

// logFailure logs a line about a failed call or a rejected request, within log_lines_per_second.
func (f *Filter) logFailure(level slog.Level, msg string, args ...any) {
	if f.lim.failLog.allow() {
		f.log.Log(context.Background(), level, msg, args...)
	}
}

// instrumentModule adds the interrupt checks and the call depth count to bin. A module the
// rewrite cannot handle is not refused: it runs as it is, stopped by wazero's own
// close-on-context-done checks (fallback), which cost a goroutine and a context per call.
func instrumentModule(bin []byte, maxDepth uint32) (out []byte, fallback bool, reason error) {
	out, err := interrupt.Instrument(bin, interrupt.Options{MaxCallDepth: maxDepth})
	if err != nil {
		return bin, true, err
	}
	return out, false, nil
}

// checkBodySize traps a write_body that would make the body longer than max: the request fails
// instead of the gateway holding whatever the guest writes. appending: the guest already
// replaced the body in this request, so the write adds to have bytes.
func (in *instance) checkBodySize(appending bool, have, n, max int, what string) {
	if !appending {
		have = 0
	}
	if have+n > max {
		panic(trapf("write_body: the %s body would exceed %d bytes (max_body_bytes, or the server's limit)", what, max))
	}
}

const (
	// bigBodyBytes: past this size a body the guest writes piece by piece is appended to a
	// buffer of the request's own that doubles, rather than fasthttp's, which grows by Go's
	// append (by a quarter at these sizes) and leaves about four times the body in garbage.
	bigBodyBytes = 1 << 20
	// keepBodyBytes bounds the buffer an instance keeps for the guest's response body between
	// requests.
	keepBodyBytes = 64 << 10
)

// appendGuestBody appends b to the body cur in the request's own buffer, growing it by doubling
// up to max (checkBodySize has made sure cur+b fits), and returns the new body. The buffer is
// handed to fasthttp (SetBodyRaw) and never reused by another request. For a response body (hold
// is the request), what the buffer grows by is counted against the server's
// held_response_budget, as an upstream response the balancer holds is, until the client has
// read the response: past the budget the write traps. max_response_bytes alone bounds one
// request, not the pool_max requests a guest may be answering at once.
func (in *instance) appendGuestBody(hold *engine.Ctx, cur, b []byte, max int) []byte {
	need := len(cur) + len(b)
	ours := len(cur) > 0 && len(in.bigBody) == len(cur) && &in.bigBody[0] == &cur[0]
	if !ours || cap(in.bigBody) < need {
		size, had := min(max, 2*need), 0
		if ours {
			had = cap(in.bigBody)
		}
		if hold != nil && !hold.HoldResponse(size-had) {
			panic(trapf("write_body: the response body would take the server's held_response_budget past its limit"))
		}
		nb := make([]byte, len(cur), size)
		copy(nb, cur)
		in.bigBody = nb
	}
	in.bigBody = append(in.bigBody, b...)
	return in.bigBody
}
