package balancer

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is an `upstream "NAME" { … }` block.
type Config struct {
	Policy                  string                  `hcl:"policy,optional" json:"policy"`
	HashOn                  string                  `hcl:"hash_on,optional" json:"hash_on,omitempty"`
	Targets                 []TargetConfig          `hcl:"target,block" json:"targets"`
	DNSRefresh              engine.Duration         `hcl:"dns_refresh,optional" json:"dns_refresh"`
	HealthCheck             *HealthCheckConfig      `hcl:"health_check,block" json:"health_check,omitempty"`
	OutlierDetection        *OutlierDetectionConfig `hcl:"outlier_detection,block" json:"outlier_detection,omitempty"`
	Retry                   *RetryConfig            `hcl:"retry,block" json:"retry,omitempty"`
	Timeouts                *TimeoutsConfig         `hcl:"timeouts,block" json:"timeouts,omitempty"`
	MaxConnectionsPerTarget int                     `hcl:"max_connections_per_target,optional" json:"max_connections_per_target"`
	// StreamResponses sends every response of unknown length (chunked, or delimited by the
	// connection's end) to the client as it arrives, instead of holding it up to
	// max_response_bytes for the response phases (stream.go).
	StreamResponses bool `hcl:"stream_responses,optional" json:"stream_responses"`
	// Protocol is what the balancer speaks to the targets (h2transport.go): http1, h2, h2c or auto.
	Protocol string `hcl:"protocol,optional" json:"protocol"`
	// TLS turns TLS on for every target, with these settings where a target has none of its own.
	TLS *UpstreamTLSConfig `hcl:"tls,block" json:"tls,omitempty"`
	// CircuitBreaker caps what is in progress at the upstream at once (circuit.go).
	CircuitBreaker *CircuitBreakerConfig `hcl:"circuit_breaker,block" json:"circuit_breaker,omitempty"`
}

// TargetConfig is one `target { … }` block.
type TargetConfig struct {
	Address string `hcl:"address" json:"address"`
	Weight  int    `hcl:"weight,optional" json:"weight"`
	TLS     bool   `hcl:"tls,optional" json:"tls"`
	CAFile  string `hcl:"ca_file,optional" json:"ca_file,omitempty"`
	// ServerName is the TLS server name sent (SNI) and verified, instead of the address's host.
	ServerName string `hcl:"server_name,optional" json:"server_name,omitempty"`
	// CertFile and KeyFile are a client certificate for upstreams that require one (mTLS). The
	// key is read when the upstream is built and kept only in the TLS configuration.
	CertFile string `hcl:"cert_file,optional" json:"cert_file,omitempty"`
	KeyFile  string `hcl:"key_file,optional" json:"key_file,omitempty"`
	// InsecureSkipVerify accepts any certificate the target presents (validate warns).
	InsecureSkipVerify bool `hcl:"insecure_skip_verify,optional" json:"insecure_skip_verify,omitempty"`
}

// HealthCheckConfig is the `health_check` block: active HTTP probes.
type HealthCheckConfig struct {
	// Type is "http" (a GET of path) or "grpc" (grpc.health.v1.Health/Check over HTTP/2).
	Type string `hcl:"type,optional" json:"type"`
	// Service is the service name a gRPC check asks about ("": the server as a whole).
	Service            string          `hcl:"service,optional" json:"service,omitempty"`
	Path               string          `hcl:"path,optional" json:"path"`
	Interval           engine.Duration `hcl:"interval,optional" json:"interval"`
	Timeout            engine.Duration `hcl:"timeout,optional" json:"timeout"`
	HealthyThreshold   int             `hcl:"healthy_threshold,optional" json:"healthy_threshold"`
	UnhealthyThreshold int             `hcl:"unhealthy_threshold,optional" json:"unhealthy_threshold"`
	ExpectStatus       []int           `hcl:"expect_status,optional" json:"expect_status"`
}

// OutlierDetectionConfig is the `outlier_detection` block: passive health.
type OutlierDetectionConfig struct {
	ConsecutiveFailures int             `hcl:"consecutive_failures,optional" json:"consecutive_failures"`
	BaseEjectionTime    engine.Duration `hcl:"base_ejection_time,optional" json:"base_ejection_time"`
	MaxEjectionPercent  *int            `hcl:"max_ejection_percent,optional" json:"max_ejection_percent"`
}

// RetryConfig is the `retry` block.
type RetryConfig struct {
	Attempts      *int            `hcl:"attempts,optional" json:"attempts"`
	On            []string        `hcl:"on,optional" json:"on"`
	BudgetPercent *int            `hcl:"budget_percent,optional" json:"budget_percent"`
	PerTryTimeout engine.Duration `hcl:"per_try_timeout,optional" json:"per_try_timeout"`
	// GRPCOn lists gRPC statuses (by name) that retry a gRPC call answered trailers-only (grpc.go).
	GRPCOn []string `hcl:"grpc_on,optional" json:"grpc_on,omitempty"`
}

// TimeoutsConfig is the `timeouts` block.
type TimeoutsConfig struct {
	Connect engine.Duration `hcl:"connect,optional" json:"connect"`
	Request engine.Duration `hcl:"request,optional" json:"request"`
}

// Defaults of the optional attributes and blocks. A nested block's zero values are filled in by
// Validate, so the defaults hold whether or not the decoder calls a nested SetDefaults.
const (
	defaultDNSRefresh      = 30 * time.Second
	defaultMaxConns        = 512
	defaultConnectTimeout  = time.Second
	defaultRequestTimeout  = 15 * time.Second
	defaultHCPath          = "/healthz"
	defaultHCInterval      = 2 * time.Second
	defaultHCTimeout       = time.Second
	defaultHealthyThresh   = 2
	defaultUnhealthyThresh = 3
	defaultConsecFailures  = 5
	defaultBaseEjection    = 30 * time.Second
	defaultMaxEjectionPct  = 50
	defaultRetryAttempts   = 2
	defaultBudgetPercent   = 20
	maxWeight              = 1000
	maxRetryAttempts       = 5
)

var defaultRetryOn = []string{"connect_failure", "reset", "502", "503", "504"}

// Health check types.
const (
	healthHTTP = "http"
	healthGRPC = "grpc"
)

// Policies lists the load-balancing policies.
var Policies = []string{"round_robin", "weighted_round_robin", "least_request", "p2c_ewma", "ring_hash", "maglev", "random"}

// SetDefaults fills the block's defaults before decoding.
func (c *Config) SetDefaults() {
	c.Policy = "round_robin"
	c.DNSRefresh = engine.Duration(defaultDNSRefresh)
	c.MaxConnectionsPerTarget = defaultMaxConns
	c.Protocol = protocolHTTP1
}

// SetDefaults fills the health_check block's defaults.
func (h *HealthCheckConfig) SetDefaults() {
	*h = HealthCheckConfig{}
	h.fill()
}

func (h *HealthCheckConfig) fill() {
	if h.Type == "" {
		h.Type = healthHTTP
	}
	if h.Path == "" {
		h.Path = defaultHCPath
	}
	if h.Interval == 0 {
		h.Interval = engine.Duration(defaultHCInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = engine.Duration(defaultHCTimeout)
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = defaultHealthyThresh
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = defaultUnhealthyThresh
	}
	if len(h.ExpectStatus) == 0 {
		h.ExpectStatus = []int{200}
	}
}

// SetDefaults fills the outlier_detection block's defaults.
func (o *OutlierDetectionConfig) SetDefaults() {
	*o = OutlierDetectionConfig{}
	o.fill()
}

func (o *OutlierDetectionConfig) fill() {
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = defaultConsecFailures
	}
	if o.BaseEjectionTime == 0 {
		o.BaseEjectionTime = engine.Duration(defaultBaseEjection)
	}
	if o.MaxEjectionPercent == nil {
		p := defaultMaxEjectionPct
		o.MaxEjectionPercent = &p
	}
}

// SetDefaults fills the retry block's defaults.
func (r *RetryConfig) SetDefaults() {
	*r = RetryConfig{}
	r.fill()
}

func (r *RetryConfig) fill() {
	if r.Attempts == nil {
		n := defaultRetryAttempts
		r.Attempts = &n
	}
	if r.On == nil {
		r.On = append([]string(nil), defaultRetryOn...)
	}
	if r.BudgetPercent == nil {
		p := defaultBudgetPercent
		r.BudgetPercent = &p
	}
}

// SetDefaults fills the timeouts block's defaults.
func (t *TimeoutsConfig) SetDefaults() {
	*t = TimeoutsConfig{}
	t.fill()
}

func (t *TimeoutsConfig) fill() {
	if t.Connect == 0 {
		t.Connect = engine.Duration(defaultConnectTimeout)
	}
	if t.Request == 0 {
		t.Request = engine.Duration(defaultRequestTimeout)
	}
}

// Validate checks the block and fills the defaults of the nested blocks. Every problem is a
// *engine.FieldError on its attribute.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, engine.FieldErr(field, format, args...)) }

	if c.Policy == "" {
		c.Policy = "round_robin"
	}
	if !contains(Policies, c.Policy) {
		add("policy", "unknown policy %q: use one of %s", c.Policy, strings.Join(Policies, ", "))
	}
	if c.HashOn != "" {
		if c.Policy != "ring_hash" && c.Policy != "maglev" {
			add("hash_on", "hash_on applies to the ring_hash and maglev policies only, not %q", c.Policy)
		} else if _, err := parseHashOn(c.HashOn); err != nil {
			errs = append(errs, &engine.FieldError{Field: "hash_on", Err: err})
		}
	}
	if len(c.Targets) == 0 {
		add("target", "an upstream needs at least one target block")
	}
	for i := range c.Targets {
		// The hcl package validates each target block itself (pinning errors to that block);
		// here only the defaults are filled, for configs built without it.
		if c.Targets[i].Weight == 0 {
			c.Targets[i].Weight = 1
		}
	}
	if c.DNSRefresh < 0 {
		add("dns_refresh", "must not be negative")
	} else if c.DNSRefresh == 0 {
		c.DNSRefresh = engine.Duration(defaultDNSRefresh)
	}
	if c.MaxConnectionsPerTarget == 0 {
		c.MaxConnectionsPerTarget = defaultMaxConns
	}
	if c.MaxConnectionsPerTarget < 0 {
		add("max_connections_per_target", "must be positive")
	}
	if c.Protocol == "" {
		c.Protocol = protocolHTTP1
	}
	c.applyTLS()
	errs = append(errs, c.validateProtocol()...)

	if h := c.HealthCheck; h != nil {
		h.fill()
		switch h.Type {
		case healthHTTP:
			if h.Service != "" {
				add("health_check.service", "service applies to type = \"grpc\" checks only")
			}
		case healthGRPC:
		default:
			add("health_check.type", "unknown health check type %q: use \"http\" or \"grpc\"", h.Type)
		}
		if !strings.HasPrefix(h.Path, "/") {
			add("health_check.path", "must start with \"/\"")
		}
		if h.Interval <= 0 {
			add("health_check.interval", "must be positive")
		}
		// A timeout longer than the interval is fine: a target's next probe waits for the
		// previous one to end, so probes never overlap.
		if h.Timeout <= 0 {
			add("health_check.timeout", "must be positive")
		}
		if h.HealthyThreshold < 1 {
			add("health_check.healthy_threshold", "must be at least 1")
		}
		if h.UnhealthyThreshold < 1 {
			add("health_check.unhealthy_threshold", "must be at least 1")
		}
		for _, s := range h.ExpectStatus {
			if s < 100 || s > 599 {
				add("health_check.expect_status", "%d is not an HTTP status", s)
			}
		}
	}
	if o := c.OutlierDetection; o != nil {
		o.fill()
		if o.ConsecutiveFailures < 1 {
			add("outlier_detection.consecutive_failures", "must be at least 1")
		}
		if o.BaseEjectionTime <= 0 {
			add("outlier_detection.base_ejection_time", "must be positive")
		}
		if p := *o.MaxEjectionPercent; p < 0 || p > 100 {
			add("outlier_detection.max_ejection_percent", "must be between 0 and 100")
		}
	}
	if c.Retry == nil {
		// Without a retry block, a request whose connection failed before it was sent is still
		// tried once more on another target: that is always safe, and hides a dead target.
		one, budget := 1, defaultBudgetPercent
		c.Retry = &RetryConfig{Attempts: &one, On: []string{"connect_failure"}, BudgetPercent: &budget}
	}
	if r := c.Retry; r != nil {
		r.fill()
		if *r.Attempts < 0 || *r.Attempts > maxRetryAttempts {
			add("retry.attempts", "must be between 0 and %d", maxRetryAttempts)
		}
		if *r.BudgetPercent < 0 || *r.BudgetPercent > 100 {
			add("retry.budget_percent", "must be between 0 and 100")
		}
		if r.PerTryTimeout < 0 {
			add("retry.per_try_timeout", "must not be negative")
		}
		for _, on := range r.On {
			if _, err := parseRetryOn(on); err != nil {
				errs = append(errs, &engine.FieldError{Field: "retry.on", Err: err})
			}
		}
		for _, on := range r.GRPCOn {
			if _, err := parseGRPCRetryOn(on); err != nil {
				errs = append(errs, &engine.FieldError{Field: "retry.grpc_on", Err: err})
			}
		}
	}
	if c.CircuitBreaker == nil {
		c.CircuitBreaker = &CircuitBreakerConfig{}
	}
	c.CircuitBreaker.fill()
	errs = append(errs, c.CircuitBreaker.validate()...)
	if c.Timeouts == nil {
		c.Timeouts = &TimeoutsConfig{}
	}
	c.Timeouts.fill()
	if c.Timeouts.Connect < 0 {
		add("timeouts.connect", "must be positive")
	}
	if c.Timeouts.Request < 0 {
		add("timeouts.request", "must be positive")
	}
	return errors.Join(errs...)
}

// SetDefaults fills a target block's defaults.
func (t *TargetConfig) SetDefaults() { t.Weight = 1 }

// Validate checks a target block.
func (t *TargetConfig) Validate() error {
	var errs []error
	if t.Weight < 1 || t.Weight > maxWeight {
		errs = append(errs, engine.FieldErr("weight", "weight %d is out of range: use 1 to %d", t.Weight, maxWeight))
	}
	if _, _, err := splitAddress(t.Address); err != nil {
		errs = append(errs, &engine.FieldError{Field: "address", Err: err})
	}
	if t.CAFile != "" && !t.TLS {
		errs = append(errs, engine.FieldErr("ca_file", "ca_file needs tls = true"))
	}
	errs = append(errs, t.validateTLS()...)
	return errors.Join(errs...)
}

// splitAddress checks a target address "host:port" and returns its parts.
func splitAddress(addr string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: want host:port (%w)", addr, err)
	}
	if h == "" {
		return "", 0, fmt.Errorf("address %q: the host is empty", addr)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("address %q: invalid port %q", addr, p)
	}
	return h, n, nil
}

// retryOn is a parsed set of retry conditions.
type retryOn struct {
	connectFailure bool
	reset          bool
	timeout        bool
	any5xx         bool
	statuses       [6]uint64 // bit set over 100..599 (index status/100, bit status%100)
	grpc           uint32    // bit set over gRPC status codes (retry.grpc_on)
}

func (r *retryOn) status(s int) bool {
	if s >= 500 && s <= 599 && r.any5xx {
		return true
	}
	if s < 100 || s > 599 {
		return false
	}
	return r.statuses[s/100]&(1<<(s%100)) != 0
}

// parseRetryOn parses one `on` condition: connect_failure, reset, timeout, 5xx, or a status.
func parseRetryOn(s string) (func(*retryOn), error) {
	switch s {
	case "connect_failure":
		return func(r *retryOn) { r.connectFailure = true }, nil
	case "reset":
		return func(r *retryOn) { r.reset = true }, nil
	case "timeout":
		return func(r *retryOn) { r.timeout = true }, nil
	case "5xx":
		return func(r *retryOn) { r.any5xx = true }, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return nil, fmt.Errorf("unknown retry condition %q: use connect_failure, reset, timeout, 5xx or a status such as \"503\"", s)
	}
	return func(r *retryOn) { r.statuses[n/100] |= 1 << (n % 100) }, nil
}

func compileRetryOn(list, grpcOn []string) retryOn {
	var r retryOn
	for _, s := range list {
		if f, err := parseRetryOn(s); err == nil {
			f(&r)
		}
	}
	for _, s := range grpcOn {
		if code, err := parseGRPCRetryOn(s); err == nil {
			r.grpc |= 1 << code
		}
	}
	return r
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
