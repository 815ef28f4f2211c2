package balancer

import (
	"errors"
	"fmt"
	"sync"
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

// circuit holds an upstream's circuit breaker limits, its counters and its prebuilt refusals, so
// refusing allocates nothing.
type circuit struct {
	maxRequests, maxPending, maxRetries int64
	*circuitCounts
	errRequests, errPending error
}

// circuitCounts are the requests, waits and retries in progress for one upstream. They are
// shared by every built Upstream with the same name and target addresses (circuits), as
// targetState is: a reload builds a new Upstream while the old one still serves its requests, and
// both count against the same limits, so a reload neither forgets the requests in progress nor
// lets twice the limit through. The addresses are part of the key so that two gateways in one
// process (tests) never share counts.
type circuitCounts struct {
	key                        string
	refs                       int // guarded by circuits.mu
	requests, pending, retries atomic.Int64
}

var circuits = struct {
	sync.Mutex
	m map[string]*circuitCounts
}{m: map[string]*circuitCounts{}}

// share replaces the circuit's private counts (those of a validating build) with the counts
// shared by every Upstream with this name and these targets; release gives them back when the
// Upstream closes.
func (c *circuit) share(name string, targets []TargetConfig) {
	key := name
	for _, t := range targets {
		key += "\x00" + t.Address
	}
	circuits.Lock()
	defer circuits.Unlock()
	n := circuits.m[key]
	if n == nil {
		n = &circuitCounts{key: key}
		circuits.m[key] = n
	}
	n.refs++
	c.circuitCounts = n
}

func (c *circuit) release() {
	circuits.Lock()
	defer circuits.Unlock()
	n := c.circuitCounts
	if n.refs == 0 { // private counts: never shared
		return
	}
	n.refs--
	if n.refs == 0 && circuits.m[n.key] == n {
		delete(circuits.m, n.key)
	}
}

func newCircuit(name string, cfg *CircuitBreakerConfig) *circuit {
	if cfg == nil {
		cfg = &CircuitBreakerConfig{}
	}
	cfg.fill()
	c := &circuit{
		circuitCounts: &circuitCounts{},
		maxRequests:   int64(*cfg.MaxRequests),
		maxPending:    int64(*cfg.MaxPending),
		maxRetries:    int64(*cfg.MaxRetries),
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
