package balancer

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/sluice-gateway/sluice/engine"
)

// CircuitBreakerConfig is the upstream's `circuit_breaker` block (Envoy's model): caps on what
// one upstream may have in progress at once, beyond which a request is refused at once instead
// of joining a queue behind a slow or failing upstream.
type CircuitBreakerConfig struct {
	// MaxRequests caps the requests being proxied to the upstream at once (all targets).
	MaxRequests *int `hcl:"max_requests,optional" json:"max_requests"`
	// MaxPending caps the requests waiting for a free connection slot of a target
	// (max_connections_per_target taken); 0: never wait.
	MaxPending *int `hcl:"max_pending,optional" json:"max_pending"`
	// MaxRetries caps the retries in progress at once; a retry beyond it is not made.
	MaxRetries *int `hcl:"max_retries,optional" json:"max_retries"`
}

// Defaults of the circuit_breaker block. Envoy's are 1024, 1024 and 3; max_retries is larger here
// because the retry budget (budget_percent) already keeps retries a fraction of the traffic, and
// 3 would refuse nearly every retry of a busy upstream that lost one target.
const (
	defaultCBMaxRequests = 1024
	defaultCBMaxPending  = 1024
	defaultCBMaxRetries  = 32
	maxCBLimit           = 1 << 20
)

// SetDefaults fills the circuit_breaker block's defaults.
func (cb *CircuitBreakerConfig) SetDefaults() {
	*cb = CircuitBreakerConfig{}
	cb.fill()
}

func (cb *CircuitBreakerConfig) fill() {
	def := func(p **int, v int) {
		if *p == nil {
			*p = &v
		}
	}
	def(&cb.MaxRequests, defaultCBMaxRequests)
	def(&cb.MaxPending, defaultCBMaxPending)
	def(&cb.MaxRetries, defaultCBMaxRetries)
}

// validate checks the filled block.
func (cb *CircuitBreakerConfig) validate() []error {
	var errs []error
	check := func(field string, v, lo int) {
		if v < lo || v > maxCBLimit {
			errs = append(errs, engine.FieldErr("circuit_breaker."+field, "must be between %d and %d", lo, maxCBLimit))
		}
	}
	check("max_requests", *cb.MaxRequests, 1)
	check("max_pending", *cb.MaxPending, 0)
	check("max_retries", *cb.MaxRetries, 0)
	return errs
}

// errCircuitOpen is wrapped by every refusal of a circuit breaker: the client gets a 503.
var errCircuitOpen = errors.New("circuit breaker open")

// circuit holds an upstream's circuit breaker counters and its prebuilt refusals, so refusing
// allocates nothing.
type circuit struct {
	maxRequests, maxPending, maxRetries int64
	requests, pending, retries          atomic.Int64
	errRequests, errPending             error
}

func newCircuit(name string, cfg *CircuitBreakerConfig) *circuit {
	if cfg == nil {
		cfg = &CircuitBreakerConfig{}
	}
	cfg.fill()
	c := &circuit{
		maxRequests: int64(*cfg.MaxRequests),
		maxPending:  int64(*cfg.MaxPending),
		maxRetries:  int64(*cfg.MaxRetries),
	}
	c.errRequests = fmt.Errorf("upstream %s: %w: %d requests in progress (circuit_breaker.max_requests)", name, errCircuitOpen, c.maxRequests)
	c.errPending = fmt.Errorf("%w: %d requests waiting for a connection (circuit_breaker.max_pending)", errCircuitOpen, c.maxPending)
	return c
}

// enter takes a slot of max_requests; false when all are taken. leave gives it back.
func (c *circuit) enter() bool {
	if c.requests.Add(1) > c.maxRequests {
		c.requests.Add(-1)
		return false
	}
	return true
}

func (c *circuit) leave() { c.requests.Add(-1) }

// waitPending takes a slot of max_pending before a wait for a connection; donePending gives it back.
func (c *circuit) waitPending() bool {
	if c.pending.Add(1) > c.maxPending {
		c.pending.Add(-1)
		return false
	}
	return true
}

func (c *circuit) donePending() { c.pending.Add(-1) }

// startRetry takes a slot of max_retries for one retry attempt; endRetry gives it back.
func (c *circuit) startRetry() bool {
	if c.retries.Add(1) > c.maxRetries {
		c.retries.Add(-1)
		return false
	}
	return true
}

func (c *circuit) endRetry() { c.retries.Add(-1) }
