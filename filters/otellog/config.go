// Package otellog implements the "otel_log" filter kind: one access-log record per request,
// correlated with its trace, written as JSON or text lines to stdout, stderr or a file, or
// exported as OpenTelemetry logs over OTLP/HTTP.
//
// Put it first in a pipeline: its response phase then runs last and sees the final response,
// including local replies of later filters (401, 429, a Wasm guest's answer).
//
// A record holds: time (when the request arrived), method, host, path (without the query, which
// may carry secrets), status, bytes (response body), duration_ms and upstream_ms, client (after
// trusted_proxies), upstream (the last target tried), attempts, pipeline, trace_id and span_id
// (the request's server span), the configured request headers (redacted ones as "[REDACTED]";
// Authorization, Proxy-Authorization and Cookie always are) and error (the request's failure, for
// operators; never sent to clients).
//
// Lines are written by a background goroutine from a bounded buffer: a blocked stdout or a full
// disk costs dropped records (counted in sluice_otel_log_dropped_total), never blocked requests.
// A file is reopened on SIGHUP (for logrotate) and, with max_size, rotated by the filter itself
// (FILE.1 … FILE.N, N = max_backups).
package otellog

import (
	"errors"
	"strings"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "otel_log"` block.
type Config struct {
	// Output is "stdout" (default), "stderr", "otlp" (OpenTelemetry logs to telemetry.logs.endpoint)
	// or a file path (relative to the config file).
	Output string `hcl:"output,optional" json:"output"`
	// Format is "json" (default) or "text" (logfmt) for stdout, stderr and files.
	Format string `hcl:"format,optional" json:"format"`
	// RequestHeaders are logged by name (case-insensitive).
	RequestHeaders []string `hcl:"request_headers,optional" json:"request_headers,omitempty"`
	// Redact lists headers logged as "[REDACTED]" (Authorization, Proxy-Authorization and Cookie
	// always are).
	Redact []string `hcl:"redact,optional" json:"redact,omitempty"`
	// MaxSize rotates a file output once it grows past this size; 0 never rotates (use SIGHUP
	// with an external rotator).
	MaxSize engine.Size `hcl:"max_size,optional" json:"max_size,omitempty"`
	// MaxBackups is how many rotated files are kept (default 5).
	MaxBackups int `hcl:"max_backups,optional" json:"max_backups,omitempty"`
	// TraceHeaders logs the client's traceparent and tracestate as they arrived.
	TraceHeaders bool `hcl:"trace_headers,optional" json:"trace_headers,omitempty"`
}

// SetDefaults fills the defaults.
func (c *Config) SetDefaults() {
	c.Output = "stdout"
	c.Format = "json"
	c.MaxBackups = 5
}

// alwaysRedacted are credentials that are never logged in clear, whatever the config says.
var alwaysRedacted = []string{"authorization", "proxy-authorization", "cookie"}

// Validate checks the block.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Output) == "" {
		errs = append(errs, engine.FieldErr("output", "must be stdout, stderr, otlp or a file path"))
	}
	switch c.Format {
	case "json", "text":
	default:
		errs = append(errs, engine.FieldErr("format", "unknown format %q: use json or text", c.Format))
	}
	for _, h := range c.RequestHeaders {
		if !validName(h) {
			errs = append(errs, engine.FieldErr("request_headers", "invalid header name %q", h))
		}
	}
	for _, h := range c.Redact {
		if !validName(h) {
			errs = append(errs, engine.FieldErr("redact", "invalid header name %q", h))
		}
	}
	if c.MaxSize < 0 {
		errs = append(errs, engine.FieldErr("max_size", "must not be negative"))
	}
	if c.MaxSize > 0 && !c.isFile() {
		errs = append(errs, engine.FieldErr("max_size", "only applies to a file output"))
	}
	if c.MaxBackups < 0 {
		errs = append(errs, engine.FieldErr("max_backups", "must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) isFile() bool {
	switch c.Output {
	case "stdout", "stderr", "otlp":
		return false
	}
	return true
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", b) >= 0 {
			return false
		}
	}
	return true
}
