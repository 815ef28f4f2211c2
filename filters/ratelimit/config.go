package ratelimit

import (
	"errors"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "rate_limit"` block.
type Config struct {
	// Name identifies the policy in the RateLimit and RateLimit-Policy fields, in metrics and in
	// the Redis keys. Default "default" ("default-2", … for further unnamed rate_limit filters in
	// the same pipeline).
	Name string `hcl:"name,optional" json:"name,omitempty"`
	// Key is what requests are counted by: ip | header:NAME | claim:NAME | route | consumer (the
	// consumer key_auth, basic_auth or forward_auth verified) | client_cert
	// (the verified client certificate's SHA-256 fingerprint) | client_cert:subject |
	// client_cert:uri_san | client_cert:dns_san (its first such name). Default ip.
	Key string `hcl:"key,optional" json:"key"`
	// Limit requests per Period.
	Limit  int             `hcl:"limit" json:"limit"`
	Period engine.Duration `hcl:"period" json:"period"`
	// Burst is how many requests a key that was idle long enough may send back to back (see the
	// package doc). Unset (nil) means Limit: `limit = 50, period = "1m"` admits 50 at once, then
	// one per 1.2s. 1 spaces every admission period/limit apart.
	Burst *int `hcl:"burst,optional" json:"burst"`
	// Store names a redis block (`redis.NAME`); empty means in-process.
	Store engine.RedisRef `hcl:"store,optional" json:"store,omitempty"`
	// OnStoreError is what happens while the Redis store is unreachable: allow | deny | local.
	OnStoreError string `hcl:"on_store_error,optional" json:"on_store_error"`
	// Headers adds RateLimit-Policy and RateLimit to every response.
	Headers bool `hcl:"headers,optional" json:"headers"`
}

// SetDefaults fills the defaults before decoding.
func (c *Config) SetDefaults() {
	c.Key = "ip"
	c.OnStoreError = "local"
	c.Headers = true
}

const (
	// maxBurst keeps burst*T and the Redis script's arithmetic far from overflow.
	maxBurst = 1 << 30
	// maxSpan bounds (burst+1)*T, the longest a key can stay limited: about 10 years.
	maxSpan = 10 * 365 * 24 * time.Hour
)

// Validate checks the attributes; each error names its attribute.
func (c *Config) Validate() error {
	var errs []error
	if c.Name != "" && !validPolicyName(c.Name) {
		errs = append(errs, engine.FieldErr("name", "invalid policy name %q: use 1 to 64 letters, digits, '-', '_' or '.'", c.Name))
	}
	if _, err := parseKey(c.Key); err != nil {
		errs = append(errs, &engine.FieldError{Field: "key", Err: err})
	}
	if c.Limit < 1 {
		errs = append(errs, engine.FieldErr("limit", "must be at least 1"))
	}
	switch {
	case c.Period <= 0:
		errs = append(errs, engine.FieldErr("period", "must be positive, such as \"1s\" or \"1m\""))
	case c.Limit >= 1 && c.Period.D()/time.Duration(c.Limit) < time.Microsecond:
		errs = append(errs, engine.FieldErr("period", "%s / %d is below the 1µs resolution of the stores: use a longer period", c.Period.D(), c.Limit))
	}
	switch b := c.burst(); {
	case c.Burst != nil && b < 1:
		// Before burst counted every request admitted at once, it counted the extra ones:
		// burst = 0 was what burst = 1 is now.
		errs = append(errs, engine.FieldErr("burst", "must be at least 1: burst is how many requests may arrive back to back (1 spaces them period/limit apart; leave it out for limit)"))
	case b > maxBurst:
		errs = append(errs, engine.FieldErr("burst", "must be at most %d", maxBurst))
	case c.Limit >= 1 && c.Period > 0 && float64(b)*float64(c.Period)/float64(c.Limit) > float64(maxSpan):
		errs = append(errs, engine.FieldErr("burst", "burst × period / limit must stay under 10 years"))
	}
	switch c.OnStoreError {
	case "allow", "deny", "local":
	default:
		errs = append(errs, engine.FieldErr("on_store_error", "unknown mode %q: use allow, deny or local", c.OnStoreError))
	}
	return errors.Join(errs...)
}

// burst is the effective burst: the attribute, or Limit when it is not set.
func (c *Config) burst() int {
	if c.Burst != nil {
		return *c.Burst
	}
	return c.Limit
}

func validPolicyName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return false
		}
	}
	return true
}

// keyKind is what a request is counted by.
type keyKind uint8

const (
	keyIP keyKind = iota
	keyHeader
	keyClaim
	keyRoute
	keyCert // arg: "fingerprint", "subject", "uri_san" or "dns_san"
	keyConsumer
)

type keySpec struct {
	kind keyKind
	arg  string // the header name or the claim path
}

func parseKey(s string) (keySpec, error) {
	switch s {
	case "ip":
		return keySpec{kind: keyIP}, nil
	case "route":
		return keySpec{kind: keyRoute}, nil
	case "consumer":
		return keySpec{kind: keyConsumer}, nil
	case "client_cert":
		return keySpec{kind: keyCert, arg: "fingerprint"}, nil
	case "client_cert:subject", "client_cert:uri_san", "client_cert:dns_san":
		return keySpec{kind: keyCert, arg: s[len("client_cert:"):]}, nil
	}
	prefix, arg, found := strings.Cut(s, ":")
	switch {
	case found && prefix == "header":
		if !validToken(arg) {
			return keySpec{}, errors.New("header:NAME needs a valid header name, such as \"header:X-Api-Key\"")
		}
		return keySpec{kind: keyHeader, arg: arg}, nil
	case found && prefix == "claim":
		if arg == "" || strings.HasPrefix(arg, ".") || strings.HasSuffix(arg, ".") {
			return keySpec{}, errors.New("claim:NAME needs a claim name, such as \"claim:sub\" (dots walk into objects)")
		}
		return keySpec{kind: keyClaim, arg: arg}, nil
	}
	if found && prefix == "client_cert" {
		return keySpec{}, errors.New("unknown key " + quote(s) + ": use client_cert (the fingerprint), client_cert:subject, client_cert:uri_san or client_cert:dns_san")
	}
	return keySpec{}, errors.New("unknown key " + quote(s) + ": use ip, header:NAME, claim:NAME, route, consumer or client_cert")
}

func quote(s string) string { return "\"" + s + "\"" }

// validToken reports whether s is an HTTP token (a valid header name).
func validToken(s string) bool {
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
