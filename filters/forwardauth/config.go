// Package forwardauth implements the "forward_auth" filter kind (Traefik's ForwardAuth, nginx's
// auth_request, Envoy's ext_authz over HTTP): every request is first put to an authorization
// service; a 2xx lets it through, anything else is the answer.
package forwardauth

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "forward_auth"` block.
type Config struct {
	// URL is the authorization service's endpoint (http or https).
	URL string `hcl:"url" json:"url"`
	// Timeout bounds one call, connecting and waiting for a free connection included.
	Timeout engine.Duration `hcl:"timeout,optional" json:"timeout"`
	// MaxConnections bounds the connections kept to the service.
	MaxConnections int `hcl:"max_connections,optional" json:"max_connections"`
	// RequestHeaders are copied from the client's request to the service.
	RequestHeaders []string `hcl:"request_headers,optional" json:"request_headers"`
	// UpstreamHeaders are copied from an allowing answer onto the request for the upstream; a
	// client's own copies are removed first.
	UpstreamHeaders []string `hcl:"upstream_headers,optional" json:"upstream_headers"`
	// ClientHeaders are copied from a refusing answer to the client.
	ClientHeaders []string `hcl:"client_headers,optional" json:"client_headers"`
	// ConsumerHeader names the allowing answer's header whose value is the consumer's id.
	ConsumerHeader string `hcl:"consumer_header,optional" json:"consumer_header,omitempty"`
	// MaxBodyBytes bounds the service's answer body (a refusal's body goes to the client).
	MaxBodyBytes engine.Size `hcl:"max_body_bytes,optional" json:"max_body_bytes"`
	// OnError is what happens when the service cannot be asked: "deny" (503) or "allow".
	OnError string `hcl:"on_error,optional" json:"on_error"`
	// CacheTTL keeps allowing decisions for this long, keyed by the CacheKey headers' values.
	CacheTTL  engine.Duration `hcl:"cache_ttl,optional" json:"cache_ttl"`
	CacheKey  []string        `hcl:"cache_key,optional" json:"cache_key,omitempty"`
	CacheSize int             `hcl:"cache_size,optional" json:"cache_size"`
}

// Defaults and bounds.
const (
	defaultTimeout      = 2 * time.Second
	maxTimeout          = time.Minute
	defaultMaxConns     = 64
	maxMaxConns         = 4096
	defaultMaxBodyBytes = 64 << 10
	maxMaxBodyBytes     = 1 << 20
	defaultCacheSize    = 10000
	maxCacheSize        = 1 << 22
	maxCacheTTL         = time.Hour
)

// SetDefaults fills the defaults before decoding.
func (c *Config) SetDefaults() {
	c.Timeout = engine.Duration(defaultTimeout)
	c.MaxConnections = defaultMaxConns
	c.RequestHeaders = []string{"Authorization", "Cookie"}
	c.ClientHeaders = []string{"WWW-Authenticate", "Location", "Set-Cookie", "Content-Type", "Retry-After"}
	c.MaxBodyBytes = defaultMaxBodyBytes
	c.OnError = "deny"
	c.CacheSize = defaultCacheSize
}

// gatewayHeaders are the gateway's to set on either request: never copied.
var gatewayHeaders = []string{"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive", "proxy-connection"}

// Validate checks the block.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		errs = append(errs, engine.FieldErr("url", "must be an http:// or https:// URL without user info or fragment, such as \"http://127.0.0.1:9100/check\""))
	}
	if c.Timeout <= 0 || c.Timeout.D() > maxTimeout {
		errs = append(errs, engine.FieldErr("timeout", "must be between 1ms and %s", maxTimeout))
	}
	if c.MaxConnections < 1 || c.MaxConnections > maxMaxConns {
		errs = append(errs, engine.FieldErr("max_connections", "must be between 1 and %d", maxMaxConns))
	}
	for _, list := range []struct {
		field string
		names []string
	}{{"request_headers", c.RequestHeaders}, {"upstream_headers", c.UpstreamHeaders}, {"client_headers", c.ClientHeaders}, {"cache_key", c.CacheKey}} {
		for _, n := range list.names {
			switch {
			case !token(n):
				errs = append(errs, engine.FieldErr(list.field, "%q is not a valid header name", n))
			case list.field != "cache_key" && isGatewayHeader(n):
				errs = append(errs, engine.FieldErr(list.field, "%s is the gateway's to set", n))
			}
		}
	}
	if c.ConsumerHeader != "" && !token(c.ConsumerHeader) {
		errs = append(errs, engine.FieldErr("consumer_header", "%q is not a valid header name", c.ConsumerHeader))
	}
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > maxMaxBodyBytes {
		errs = append(errs, engine.FieldErr("max_body_bytes", "must be between 0 and 1MiB"))
	}
	switch c.OnError {
	case "deny", "allow":
	default:
		errs = append(errs, engine.FieldErr("on_error", "must be \"deny\" (503 when the service cannot be asked) or \"allow\""))
	}
	if c.CacheTTL < 0 || c.CacheTTL.D() > maxCacheTTL {
		errs = append(errs, engine.FieldErr("cache_ttl", "must be between 0 (no cache) and %s", maxCacheTTL))
	}
	if c.CacheTTL > 0 && len(c.CacheKey) == 0 {
		errs = append(errs, engine.FieldErr("cache_key", "is required with cache_ttl: the request headers a decision depends on, such as [\"Authorization\"]"))
	}
	for _, k := range c.CacheKey {
		if !containsFold(c.RequestHeaders, k) {
			errs = append(errs, engine.FieldErr("cache_key", "%s is not in request_headers: the service never sees it, so it cannot decide on it", k))
		}
	}
	if c.CacheSize < 1 || c.CacheSize > maxCacheSize {
		errs = append(errs, engine.FieldErr("cache_size", "must be between 1 and %d", maxCacheSize))
	}
	return errors.Join(errs...)
}

// Warnings reports settings that are allowed but unsafe.
func (c *Config) Warnings() error {
	if c.OnError == "allow" {
		return engine.FieldWarn("on_error", "\"allow\" lets every request through unauthenticated while the authorization service cannot be asked")
	}
	return nil
}

func isGatewayHeader(n string) bool {
	for _, g := range gatewayHeaders {
		if strings.EqualFold(n, g) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// token reports whether s is an HTTP token (a valid header name).
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", b) >= 0 {
			return false
		}
	}
	return true
}
