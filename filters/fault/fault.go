// Package fault implements the "fault" filter kind: fault injection for testing how clients and
// services cope. It delays and/or aborts a percentage of requests, optionally only those that
// carry a header.
package fault

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// MaxDelay bounds delay: a fault delay holds a connection and a goroutine.
const MaxDelay = engine.Duration(time.Minute)

// Config is the body of a `filter "fault"` block.
type Config struct {
	Delay        engine.Duration `hcl:"delay,optional" json:"delay"`
	DelayPercent float64         `hcl:"delay_percent,optional" json:"delay_percent"`
	AbortStatus  int             `hcl:"abort_status,optional" json:"abort_status,omitempty"`
	AbortPercent float64         `hcl:"abort_percent,optional" json:"abort_percent"`
	// Header, when set, limits the faults to requests that carry it (any value).
	Header string `hcl:"header,optional" json:"header,omitempty"`
}

// SetDefaults: every request that the filter may affect is affected (100%).
func (c *Config) SetDefaults() {
	c.DelayPercent = 100
	c.AbortPercent = 100
}

// Validate checks the bounds.
func (c *Config) Validate() error {
	var errs []error
	if c.Delay < 0 || c.Delay > MaxDelay {
		errs = append(errs, engine.FieldErr("delay", "must be between 0 and %s", MaxDelay.D()))
	}
	if c.DelayPercent < 0 || c.DelayPercent > 100 {
		errs = append(errs, engine.FieldErr("delay_percent", "must be between 0 and 100"))
	}
	if c.AbortPercent < 0 || c.AbortPercent > 100 {
		errs = append(errs, engine.FieldErr("abort_percent", "must be between 0 and 100"))
	}
	if c.AbortStatus != 0 && (c.AbortStatus < 200 || c.AbortStatus > 599) {
		errs = append(errs, engine.FieldErr("abort_status", "%d is not a final HTTP status (200–599)", c.AbortStatus))
	}
	if c.Header != "" && !validName(c.Header) {
		errs = append(errs, engine.FieldErr("header", "invalid header name %q", c.Header))
	}
	if c.Delay == 0 && c.AbortStatus == 0 {
		errs = append(errs, engine.FieldErr("delay", "the filter injects nothing: set delay and/or abort_status"))
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || b == ':' {
			return false
		}
	}
	return s != ""
}

var (
	mDelayed = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_fault_delays_total",
		Help: "Requests the fault filter delayed.",
	}, []string{"pipeline"})
	mAborted = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_fault_aborts_total",
		Help: "Requests the fault filter answered with its abort_status.",
	}, []string{"pipeline", "status"})
)

// Register declares the "fault" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "fault", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		return New(cfg, env.Pipeline), nil
	})
}

// Filter injects the faults. It allocates nothing per request (delays use pooled timers).
type Filter struct {
	delay        time.Duration
	delayPercent float64
	abortStatus  int
	abortPercent float64
	header       engine.HeaderName // zero: every request
	delayed      prometheus.Counter
	aborted      prometheus.Counter
	timers       sync.Pool
}

// New builds the filter from a validated config; pipeline labels its metrics.
func New(cfg *Config, pipeline string) *Filter {
	f := &Filter{
		delay:        cfg.Delay.D(),
		delayPercent: cfg.DelayPercent,
		abortStatus:  cfg.AbortStatus,
		abortPercent: cfg.AbortPercent,
		delayed:      mDelayed.WithLabelValues(pipeline),
	}
	if cfg.Header != "" {
		f.header = engine.NewHeaderName(cfg.Header)
	}
	if cfg.AbortStatus != 0 {
		f.aborted = mAborted.WithLabelValues(pipeline, itoa(cfg.AbortStatus))
	}
	return f
}

func itoa(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// hit draws whether a request falls within percent.
func hit(percent float64) bool {
	return percent >= 100 || (percent > 0 && rand.Float64()*100 < percent)
}

// OnRequest delays and/or aborts the request.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	if !f.header.IsZero() && f.header.Peek(&c.Request.Header) == nil {
		return engine.Continue
	}
	if f.delay > 0 && hit(f.delayPercent) {
		f.delayed.Inc()
		c.AddFlags(engine.FlagFaultInjected)
		if !f.wait(c) {
			// The client has gone, or the server is shutting down: nobody waits for an answer.
			c.AddFlags(engine.FlagClientGone)
			return c.Fail(503, errClientGone)
		}
	}
	if f.abortStatus != 0 && hit(f.abortPercent) {
		f.aborted.Inc()
		c.AddFlags(engine.FlagFaultInjected)
		// An intended answer: no Failure, so no log line per request (the counter tells).
		engine.WriteError(c.Response, f.abortStatus)
		return engine.Respond
	}
	return engine.Continue
}

var errClientGone = errors.New("fault: the client went away during the injected delay")

// wait sleeps for the delay unless the client goes away (its HTTP/2 stream reset or connection
// closed) or the server shuts down first; it reports whether the whole delay passed.
func (f *Filter) wait(c *engine.Ctx) bool {
	t, _ := f.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(f.delay)
	} else {
		t.Reset(f.delay)
	}
	defer func() {
		t.Stop() // since Go 1.23 a stopped timer's channel holds no stale value
		f.timers.Put(t)
	}()
	var gone, shutdown <-chan struct{}
	if c.ClientContext != nil {
		gone = c.ClientContext.Done()
	}
	if c.Fast != nil {
		shutdown = c.Fast.Done()
	}
	select {
	case <-t.C:
		return true
	case <-gone:
		return false
	case <-shutdown:
		return false
	}
}

// OnResponse does nothing.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}
