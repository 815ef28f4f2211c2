// Package basicauth implements the "basic_auth" filter kind: HTTP Basic authentication (RFC 7617)
// against users in an htpasswd file with bcrypt hashes, with a cache of verified credentials so
// that a repeat costs no bcrypt, and a bound on the bcrypt work in progress.
package basicauth

import (
	"errors"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "basic_auth"` block.
type Config struct {
	// HtpasswdFile names the users: "name:bcrypt-hash" lines (htpasswd -B).
	HtpasswdFile string `hcl:"htpasswd_file" json:"htpasswd_file"`
	// Realm is the realm of the WWW-Authenticate challenge.
	Realm string `hcl:"realm,optional" json:"realm"`
	// ForwardAuthorization keeps the client's Authorization header for the upstream.
	ForwardAuthorization bool `hcl:"forward_authorization,optional" json:"forward_authorization"`
	// UserHeader, when set, carries the verified user name to the upstream; a client's copy is
	// always removed.
	UserHeader string `hcl:"user_header,optional" json:"user_header,omitempty"`
	// CacheSize bounds the verified credentials kept; CacheTTL is how long one is trusted
	// without bcrypt. A TTL of 0 turns the cache off.
	CacheSize int             `hcl:"cache_size,optional" json:"cache_size"`
	CacheTTL  engine.Duration `hcl:"cache_ttl,optional" json:"cache_ttl"`
	// MaxConcurrentBcrypt bounds the bcrypt verifications in progress at once (0: half the
	// CPUs, at least 1); a request that would need one more is answered 503 at once.
	MaxConcurrentBcrypt int `hcl:"max_concurrent_bcrypt,optional" json:"max_concurrent_bcrypt"`
}

// Defaults.
const (
	defaultRealm     = "sluice"
	defaultCacheSize = 10000
	defaultCacheTTL  = 5 * time.Minute
	maxCacheSize     = 1 << 22
	maxCacheTTL      = 24 * time.Hour
	maxBcryptSlots   = 1024
)

// SetDefaults fills the defaults before decoding.
func (c *Config) SetDefaults() {
	c.Realm = defaultRealm
	c.CacheSize = defaultCacheSize
	c.CacheTTL = engine.Duration(defaultCacheTTL)
}

// Validate checks the block; the file's contents are checked when the filter is built.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.HtpasswdFile) == "" {
		errs = append(errs, engine.FieldErr("htpasswd_file", "is required: a file of name:bcrypt-hash lines (htpasswd -B)"))
	}
	if c.Realm == "" || strings.ContainsAny(c.Realm, "\"\\") || !printable(c.Realm) {
		errs = append(errs, engine.FieldErr("realm", "must be non-empty printable ASCII without quotes or backslashes"))
	}
	if c.UserHeader != "" && !token(c.UserHeader) {
		errs = append(errs, engine.FieldErr("user_header", "%q is not a valid header name", c.UserHeader))
	}
	if strings.EqualFold(c.UserHeader, "authorization") {
		errs = append(errs, engine.FieldErr("user_header", "must not be Authorization"))
	}
	if c.CacheSize < 1 || c.CacheSize > maxCacheSize {
		errs = append(errs, engine.FieldErr("cache_size", "must be between 1 and %d", maxCacheSize))
	}
	if c.CacheTTL < 0 || c.CacheTTL.D() > maxCacheTTL {
		errs = append(errs, engine.FieldErr("cache_ttl", "must be between 0 (no cache) and %s", maxCacheTTL))
	}
	if c.MaxConcurrentBcrypt < 0 || c.MaxConcurrentBcrypt > maxBcryptSlots {
		errs = append(errs, engine.FieldErr("max_concurrent_bcrypt", "must be between 0 (half the CPUs) and %d", maxBcryptSlots))
	}
	return errors.Join(errs...)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
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
