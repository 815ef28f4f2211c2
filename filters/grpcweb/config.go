package grpcweb

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "grpc_web"` block. The CORS attributes answer the preflights
// of browsers calling from another origin; a pipeline with no allow_origins serves same-origin
// pages only.
type Config struct {
	// AllowOrigins lists the origins ("https://app.example.com") whose pages may call the
	// pipeline; "*" allows any. Empty: no CORS (preflights pass through to the next stage).
	AllowOrigins []string `hcl:"allow_origins,optional" json:"allow_origins"`
	// AllowHeaders are the request headers a preflight allows.
	AllowHeaders []string `hcl:"allow_headers,optional" json:"allow_headers"`
	// ExposeHeaders are the response headers a cross-origin page may read.
	ExposeHeaders []string `hcl:"expose_headers,optional" json:"expose_headers"`
	// MaxAge is how long a browser may cache a preflight's answer.
	MaxAge engine.Duration `hcl:"max_age,optional" json:"max_age"`
	// AllowCredentials lets pages send cookies and client certificates cross-origin.
	AllowCredentials bool `hcl:"allow_credentials,optional" json:"allow_credentials"`
}

// DefaultAllowHeaders are the request headers the gRPC-Web clients send, and authorization
// for a bearer token.
var DefaultAllowHeaders = []string{"content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"}

// DefaultExposeHeaders are the headers of a trailers-only response (the status of a call that
// failed before its first message), which a page could not read otherwise.
var DefaultExposeHeaders = []string{"grpc-status", "grpc-message", "grpc-status-details-bin"}

// maxMaxAge is the longest preflight cache browsers honour (Firefox: 24h; Chromium caps at 2h).
const maxMaxAge = 24 * time.Hour

// SetDefaults fills the defaults: no origins, DefaultAllowHeaders, DefaultExposeHeaders, 10m.
func (c *Config) SetDefaults() {
	c.AllowHeaders = slices.Clone(DefaultAllowHeaders)
	c.ExposeHeaders = slices.Clone(DefaultExposeHeaders)
	c.MaxAge = engine.Duration(10 * time.Minute)
}

// Validate checks the origins, header names and max_age.
func (c *Config) Validate() error {
	var errs []error
	for _, o := range c.AllowOrigins {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, engine.FieldErr("allow_origins", "%q: %v", o, err))
		}
	}
	if c.AllowCredentials && slices.Contains(c.AllowOrigins, "*") {
		errs = append(errs, engine.FieldErr("allow_credentials",
			"cannot be true with allow_origins = [\"*\"]: browsers refuse credentials for a wildcard origin; list the origins"))
	}
	for _, h := range c.AllowHeaders {
		if !token(h) {
			errs = append(errs, engine.FieldErr("allow_headers", "invalid header name %q", h))
		}
	}
	for _, h := range c.ExposeHeaders {
		if !token(h) {
			errs = append(errs, engine.FieldErr("expose_headers", "invalid header name %q", h))
		}
	}
	if c.MaxAge < 0 || c.MaxAge.D() > maxMaxAge {
		errs = append(errs, engine.FieldErr("max_age", "must be between 0 and 24h"))
	}
	return errors.Join(errs...)
}

// checkOrigin accepts "*" and a serialized origin: scheme://host[:port], no path, no query.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("an origin is http:// or https:// followed by a host")
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" ||
		strings.HasSuffix(o, "/") || strings.Contains(u.Host, "*") {
		return errors.New("an origin is scheme://host[:port], without a path, a trailing slash or wildcards (use \"*\" alone for any origin)")
	}
	return nil
}

func token(s string) bool {
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

// Warnings reports the settings `sluice validate` warns about: any origin allowed.
func (c *Config) Warnings() error {
	if slices.Contains(c.AllowOrigins, "*") {
		return engine.FieldErr("allow_origins", "\"*\" lets a page of any web site call these services from its visitors' "+
			"browsers (with the headers they send, such as an Authorization a page adds); list the origins of your own pages")
	}
	return nil
}
