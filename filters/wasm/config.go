package wasm

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Config is the body of a `filter "wasm"` block.
type Config struct {
	// Name names the filter in logs, spans and metrics ("wasm:NAME").
	Name string `hcl:"name,optional" json:"name,omitempty"`
	// Module is the path of the .wasm file, relative to the config file.
	Module string `hcl:"module" json:"module"`
	// Config is any HCL value; the guest reads it as JSON through get_config.
	Config cty.Value `hcl:"config,optional" json:"config"`
	// ConfigRaw is given to the guest byte for byte through get_config, for guests that parse
	// their own format (Traefik and Dapr pass raw bytes: host-go's redact example expects the
	// secret itself, "open sesame"). At most one of config and config_raw.
	ConfigRaw *string `hcl:"config_raw,optional" json:"config_raw,omitempty" sluice:"secret"`
	// MemoryLimit caps each instance's linear memory (rounded down to 64KiB pages).
	MemoryLimit engine.Size `hcl:"memory_limit,optional" json:"memory_limit"`
	// Timeout bounds each call into the guest (handle_request, handle_response); default 1s. A
	// guest still running at it is stopped at its next function entry or loop head (package
	// interrupt), and the request fails (on_error: deny answers 503). Must be positive.
	Timeout engine.Duration `hcl:"timeout,optional" json:"timeout"`
	// UnlimitedTime = true lets calls run without a time limit (timeout is ignored). `sluice
	// validate` warns about it. Shutdown and reload still stop a running guest.
	UnlimitedTime bool `hcl:"unlimited_time,optional" json:"unlimited_time"`
	// LoadTimeout bounds instantiating the module and running its start functions (_start,
	// _initialize, the start section) for each new instance; default 10s. A start that runs
	// longer fails the build: `sluice validate` exits 1 and a reload is refused.
	LoadTimeout engine.Duration `hcl:"load_timeout,optional" json:"load_timeout"`
	// MaxCallDepth bounds how many calls deep the guest may nest (the guest's call stack, which
	// memory_limit does not cover); deeper traps and fails the request. Default 10000, at most
	// 100000.
	MaxCallDepth int `hcl:"max_call_depth,optional" json:"max_call_depth"`
	// MaxBodyBytes bounds a body the guest writes with write_body; writing more fails the
	// request. Default 0: the server's max_body_bytes for request bodies and max_response_bytes
	// for response bodies (64MiB if that is 0).
	MaxBodyBytes engine.Size `hcl:"max_body_bytes,optional" json:"max_body_bytes"`
	// BreakerFailures guest failures (traps, timeouts, exits, refused host calls) within
	// BreakerWindow open the filter's circuit breaker: for BreakerCooldown the guest is not
	// called and requests are answered as on_error says (deny: 503, skip: without the filter);
	// then one request probes the guest, and a success closes the breaker. Defaults 20, 10s,
	// 5s.
	BreakerFailures int             `hcl:"breaker_failures,optional" json:"breaker_failures"`
	BreakerWindow   engine.Duration `hcl:"breaker_window,optional" json:"breaker_window"`
	BreakerCooldown engine.Duration `hcl:"breaker_cooldown,optional" json:"breaker_cooldown"`
	// LogLinesPerSecond bounds what the filter logs for its guest (stdout, stderr, the log host
	// function, and failures): at most this many lines a second (with bursts of as many), the
	// rest counted and reported as suppressed. Default 100.
	LogLinesPerSecond int `hcl:"log_lines_per_second,optional" json:"log_lines_per_second"`
	// PoolMin instances are kept warm; at most PoolMax exist (one per in-flight request).
	PoolMin int `hcl:"pool_min,optional" json:"pool_min"`
	PoolMax int `hcl:"pool_max,optional" json:"pool_max"`
	// PoolWait is how long a request waits for an instance when PoolMax are busy, before 503.
	PoolWait engine.Duration `hcl:"pool_wait,optional" json:"pool_wait"`
	// OnError is "deny" (answer 500, or 503 for a timeout or a full pool) or "skip" (continue
	// as if the filter were absent).
	OnError string `hcl:"on_error,optional" json:"on_error"`
	// ReleaseBetweenPhases gives the instance back to the pool while the request is upstream,
	// and calls handle_response on whichever instance is free. Only for guests that keep no
	// request state in their memory between handle_request and handle_response beyond what
	// reqCtx carries (the SDKs' filters that use reqCtx alone qualify).
	ReleaseBetweenPhases bool `hcl:"release_between_phases,optional" json:"release_between_phases"`
	// Isolation is "instance" (the default: a guest's memory and globals persist across the
	// requests its instance serves) or "request": after every request the instance's memory and
	// mutable globals are restored to their state right after the start function, copy-on-write
	// (Linux only; see isolate_linux.go), so nothing one request leaves behind reaches the next.
	// A request that grew the memory retires its instance. Modules that change tables are
	// refused; state a guest seeds at start (a random generator's) replays on every request.
	// Not with release_between_phases.
	Isolation string `hcl:"isolation,optional" json:"isolation"`

	// ABI is the guest's ABI: "" (the default: detected from the module's exports), "http-wasm"
	// or "proxy-wasm" (see proxywasm.go).
	ABI string `hcl:"abi,optional" json:"abi,omitempty"`
	// RootID is the proxy-wasm root context's name (Envoy's root_id): the guest reads it as the
	// plugin_root_id property to pick which of its root contexts serves the filter.
	RootID string `hcl:"root_id,optional" json:"root_id,omitempty"`
	// VMID is what a proxy-wasm guest reads as plugin_vm_id (Envoy's vm_id).
	VMID string `hcl:"vm_id,optional" json:"vm_id,omitempty"`
	// Upstreams names the services a proxy-wasm guest may reach with proxy_http_call (Envoy's
	// clusters): name = base URL ("http://127.0.0.1:9000"). No other destination is reachable.
	Upstreams map[string]string `hcl:"upstreams,optional" json:"upstreams,omitempty"`
}

// Isolation modes.
const (
	isolationInstance = "instance"
	isolationRequest  = "request"
)

const (
	pageSize        = 64 << 10
	maxMemoryLimit  = 4 << 30
	defaultMemLimit = 16 << 20
)

// SetDefaults fills the defaults before decoding.
func (c *Config) SetDefaults() {
	*c = Config{
		MemoryLimit: defaultMemLimit,
		PoolMin:     1,
		PoolMax:     64,
		PoolWait:    engine.Duration(50 * time.Millisecond),
		OnError:     "deny",
		Isolation:   isolationInstance,
	}
	c.setLimitDefaults()
}

// Validate checks every attribute; the module file itself is checked when the filter is built.
func (c *Config) Validate() error {
	var errs []error
	if c.Module == "" {
		errs = append(errs, engine.FieldErr("module", "must name a .wasm file"))
	}
	if c.MemoryLimit < pageSize || c.MemoryLimit > maxMemoryLimit {
		errs = append(errs, engine.FieldErr("memory_limit", "must be between 64KiB and 4GiB, got %d bytes", int64(c.MemoryLimit)))
	}
	errs = append(errs, c.validateLimits()...)
	if c.PoolMax < 1 {
		errs = append(errs, engine.FieldErr("pool_max", "must be at least 1"))
	}
	if c.PoolMin < 0 || c.PoolMin > c.PoolMax {
		errs = append(errs, engine.FieldErr("pool_min", "must be between 0 and pool_max (%d)", c.PoolMax))
	}
	if c.PoolWait < 0 {
		errs = append(errs, engine.FieldErr("pool_wait", "must not be negative"))
	}
	if c.OnError != "deny" && c.OnError != "skip" {
		errs = append(errs, engine.FieldErr("on_error", "must be \"deny\" or \"skip\", got %q", c.OnError))
	}
	switch {
	case c.Isolation != isolationInstance && c.Isolation != isolationRequest:
		errs = append(errs, engine.FieldErr("isolation", "must be \"instance\" or \"request\", got %q", c.Isolation))
	case c.Isolation == isolationRequest && c.ReleaseBetweenPhases:
		errs = append(errs, engine.FieldErr("isolation", "\"request\" cannot be combined with release_between_phases: the request's state must stay on its instance until handle_response"))
	}
	errs = append(errs, c.validateProxyWasm()...)
	if _, err := configJSON(c.Config); err != nil {
		errs = append(errs, engine.FieldErr("config", "%v", err))
	}
	if c.ConfigRaw != nil && c.Config != cty.NilVal && !c.Config.IsNull() {
		errs = append(errs, engine.FieldErr("config_raw", "cannot be set together with config: the guest gets one configuration, either config as JSON or config_raw as it is"))
	}
	return errors.Join(errs...)
}

// guestConfig returns the bytes get_config gives the guest.
func (c *Config) guestConfig() ([]byte, error) {
	if c.ConfigRaw != nil {
		return []byte(*c.ConfigRaw), nil
	}
	return configJSON(c.Config)
}

// configJSON encodes the config value as the bytes get_config returns; no config is empty.
func configJSON(v cty.Value) ([]byte, error) {
	if v == cty.NilVal || v.IsNull() {
		return nil, nil
	}
	if !v.IsWhollyKnown() {
		return nil, errors.New("must be known when the configuration is loaded")
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil, fmt.Errorf("cannot be encoded as JSON: %w", err)
	}
	return b, nil
}
