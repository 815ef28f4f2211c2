// Package jwt implements the "jwt" filter kind: it authenticates every request by verifying a
// bearer JSON Web Token (RFC 7519, compact JWS) and stores the verified claims on the request for
// later stages (engine.ClaimsKey: authorize, rate_limit, the balancer's hash_on, logs).
//
// Keys come only from configuration: a JWKS URL kept warm in the background, a JWKS file, a PEM
// public key or an HMAC secret. Tokens are parsed strictly by this package (see Parse) before the
// signature is checked with github.com/lestrrat-go/jwx/v3's building blocks, so the attacks of
// the JWT literature are refused by construction: "alg": "none", algorithms not listed,
// HMAC-with-public-key confusion (every algorithm is bound to one key type and curve), kid
// injection (a kid is only a map key), keys embedded in the token (jwk, jku, x5u, x5c are never
// used), non-canonical base64, oversized tokens and unknown critical headers.
//
// Failures answer per RFC 6750: 401 with a WWW-Authenticate challenge (error="invalid_token" and a
// short, fixed error_description when a token was sent), or 503 while the signing keys have never
// been fetched. Verified tokens are cached (bounded, until exp) so a repeated token costs a hash
// lookup and no allocation.
package jwt

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "jwt"` block.
type Config struct {
	// Issuer, when set, must equal the token's "iss" exactly.
	Issuer string `hcl:"issuer,optional" json:"issuer,omitempty"`
	// Audiences, when set, must include one of the token's "aud" values.
	Audiences []string `hcl:"audiences,optional" json:"audiences,omitempty"`
	// Algorithms lists the accepted "alg" values. Default: HS256 with hmac_secret, the key's own
	// algorithm with public_key_file, every public-key algorithm with a JWKS.
	Algorithms []string `hcl:"algorithms,optional" json:"algorithms,omitempty"`

	// Exactly one key source.
	JWKSURL       string `hcl:"jwks_url,optional" json:"jwks_url,omitempty"`
	JWKSFile      string `hcl:"jwks_file,optional" json:"jwks_file,omitempty"`
	PublicKeyFile string `hcl:"public_key_file,optional" json:"public_key_file,omitempty"`
	HMACSecret    string `hcl:"hmac_secret,optional" json:"hmac_secret,omitempty" sluice:"secret"`

	// JWKSRefresh is how often jwks_url is fetched in the background.
	JWKSRefresh engine.Duration `hcl:"jwks_refresh,optional" json:"jwks_refresh"`
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway engine.Duration `hcl:"leeway,optional" json:"leeway"`
	// From lists where the token is looked for, first found wins: "header:NAME" (for
	// Authorization, the Bearer scheme), "cookie:NAME", "query:NAME".
	From []string `hcl:"from,optional" json:"from"`
	// ForwardClaims maps claim names (dots walk into objects) to request headers for the upstream.
	ForwardClaims map[string]string `hcl:"forward_claims,optional" json:"forward_claims,omitempty"`
	// TraceSubject records the verified "sub" claim on the filter's span (sluice.jwt.subject).
	// Off by default: a subject identifies a person.
	TraceSubject bool `hcl:"trace_subject,optional" json:"trace_subject,omitempty"`
}

// SetDefaults fills the defaults before decoding.
func (c *Config) SetDefaults() {
	c.JWKSRefresh = engine.Duration(10 * time.Minute)
	c.Leeway = engine.Duration(30 * time.Second)
	c.From = []string{"header:Authorization"}
}

// Validate checks the block; file contents are checked when the filter is built.
func (c *Config) Validate() error {
	var errs []error
	n := 0
	for _, s := range []string{c.JWKSURL, c.JWKSFile, c.PublicKeyFile, c.HMACSecret} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, engine.FieldErr(c.sourceField(), "set exactly one of jwks_url, jwks_file, public_key_file or hmac_secret (%d set)", n))
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, engine.FieldErr("jwks_url", "must be an http:// or https:// URL"))
		}
	}
	hasHMAC := false
	for _, name := range c.Algorithms {
		a, ok := algorithms[name]
		switch {
		case strings.EqualFold(name, "none"):
			errs = append(errs, engine.FieldErr("algorithms", `"none" is never accepted: unsigned tokens would let anyone in`))
			continue
		case !ok:
			errs = append(errs, engine.FieldErr("algorithms", "unknown algorithm %q: use %s", name, strings.Join(algorithmNames(), ", ")))
			continue
		}
		if a.fam == famHMAC {
			hasHMAC = true
			if c.HMACSecret != "" && len(c.HMACSecret) < a.minSecret {
				errs = append(errs, engine.FieldErr("hmac_secret", "%s needs a secret of at least %d bytes (RFC 7518 §3.2)", name, a.minSecret))
			}
		} else if c.HMACSecret != "" {
			errs = append(errs, engine.FieldErr("algorithms", "%s needs a public key: with hmac_secret list only HS256, HS384 or HS512", name))
		}
	}
	if c.HMACSecret != "" && len(c.Algorithms) == 0 && len(c.HMACSecret) < 32 {
		errs = append(errs, engine.FieldErr("hmac_secret", "HS256 needs a secret of at least 32 bytes (RFC 7518 §3.2)"))
	}
	if hasHMAC && (c.PublicKeyFile != "" || c.JWKSURL != "") {
		// Verifying HS256 with a public key as the secret is the classic confusion attack; a
		// symmetric secret fetched over the network is no secret.
		errs = append(errs, engine.FieldErr("algorithms", "HMAC algorithms need hmac_secret (or oct keys in jwks_file), not a public key or a fetched JWKS"))
	}
	if c.JWKSRefresh.D() < time.Second {
		errs = append(errs, engine.FieldErr("jwks_refresh", "must be at least 1s"))
	}
	if c.Leeway < 0 {
		errs = append(errs, engine.FieldErr("leeway", "must not be negative"))
	}
	if len(c.From) == 0 {
		errs = append(errs, engine.FieldErr("from", "list at least one token source"))
	}
	for _, f := range c.From {
		if _, err := parseSource(f); err != nil {
			errs = append(errs, &engine.FieldError{Field: "from", Err: err})
		}
	}
	for claim, header := range c.ForwardClaims {
		if claim == "" {
			errs = append(errs, engine.FieldErr("forward_claims", "claim names must not be empty"))
		}
		if !validHeaderName(header) {
			errs = append(errs, engine.FieldErr("forward_claims", "claim %q: invalid header name %q", claim, header))
		} else if reservedHeader(header) {
			errs = append(errs, engine.FieldErr("forward_claims", "claim %q: header %q cannot carry claims", claim, header))
		} else if slices.ContainsFunc(c.From, func(f string) bool { return strings.EqualFold(f, "header:"+header) }) {
			// Forwarded headers are stripped from the request before the token is looked for.
			errs = append(errs, engine.FieldErr("forward_claims", "claim %q: header %q is also a token source in from", claim, header))
		}
	}
	for _, a := range c.Audiences {
		if a == "" {
			errs = append(errs, engine.FieldErr("audiences", "audiences must not be empty strings"))
		}
	}
	return errors.Join(errs...)
}

// sourceField names the attribute a key-source error points at.
func (c *Config) sourceField() string {
	switch {
	case c.HMACSecret != "":
		return "hmac_secret"
	case c.PublicKeyFile != "":
		return "public_key_file"
	case c.JWKSFile != "":
		return "jwks_file"
	}
	return "jwks_url"
}

// Register declares the "jwt" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "jwt", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		return newFilter(cfg, env, options{})
	})
}

// options are knobs tests turn; production uses the zero value.
type options struct {
	noCache  bool
	now      func() time.Time
	cooldown time.Duration // kid-miss refetch cooldown (default min(jwks_refresh, 30s))
	retry    time.Duration // background retry after a failed fetch (default min(jwks_refresh, 10s))
	every    time.Duration // background refresh period (default jwks_refresh, which is at least 1s)
}

// loadKeys builds the static key set, or the remote source, and settles the default algorithms.
func loadKeys(cfg *Config, env *engine.BuildEnv) (*keySet, error) {
	switch {
	case cfg.HMACSecret != "":
		if len(cfg.Algorithms) == 0 {
			cfg.Algorithms = []string{"HS256"}
		}
		return newKeySet([]*verifyKey{{pub: []byte(cfg.HMACSecret)}}), nil
	case cfg.PublicKeyFile != "":
		data, err := env.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("public_key_file: %w", err)
		}
		pub, err := parsePEMPublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("public_key_file %s: %w", cfg.PublicKeyFile, err)
		}
		if len(cfg.Algorithms) == 0 {
			cfg.Algorithms = []string{defaultAlgorithm(pub)}
		}
		set := newKeySet([]*verifyKey{{pub: pub}})
		if !setFitsAny(set, cfg.Algorithms) {
			return nil, fmt.Errorf("public_key_file %s holds a %s that can verify none of algorithms %v", cfg.PublicKeyFile, keyFamily(pub), cfg.Algorithms)
		}
		return set, nil
	case cfg.JWKSFile != "":
		data, err := env.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwks_file: %w", err)
		}
		set, skipped, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("jwks_file %s: %w", cfg.JWKSFile, err)
		}
		for _, s := range skipped {
			env.Logger.Warn("jwks_file: skipping key", "file", cfg.JWKSFile, "err", s)
		}
		if len(cfg.Algorithms) == 0 {
			cfg.Algorithms = append([]string(nil), asymmetricAlgorithms...)
		}
		if !setFitsAny(set, cfg.Algorithms) {
			return nil, fmt.Errorf("jwks_file %s holds no key for any of algorithms %v", cfg.JWKSFile, cfg.Algorithms)
		}
		return set, nil
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = append([]string(nil), asymmetricAlgorithms...)
	}
	return nil, nil
}

func setFitsAny(set *keySet, algs []string) bool {
	for _, name := range algs {
		for _, k := range set.all {
			if k.fits(algorithms[name]) {
				return true
			}
		}
	}
	return false
}

// source is one place a token is looked for.
type source struct {
	kind   byte // 'h' header, 'c' cookie, 'q' query parameter
	name   []byte
	header engine.HeaderName // kind 'h': name, normalised once
	bearer bool              // the Authorization header: only the Bearer scheme counts
}

func parseSource(s string) (source, error) {
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return source{}, fmt.Errorf("invalid token source %q: use header:NAME, cookie:NAME or query:NAME", s)
	}
	switch kind {
	case "header":
		if !validHeaderName(name) {
			return source{}, fmt.Errorf("invalid header name %q", name)
		}
		return source{kind: 'h', name: []byte(name), header: engine.NewHeaderName(name), bearer: strings.EqualFold(name, "Authorization")}, nil
	case "cookie":
		return source{kind: 'c', name: []byte(name)}, nil
	case "query":
		return source{kind: 'q', name: []byte(name)}, nil
	}
	return source{}, fmt.Errorf("invalid token source %q: use header:NAME, cookie:NAME or query:NAME", s)
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// reservedHeader reports headers whose meaning to the proxy or upstream a claim must not change.
func reservedHeader(h string) bool {
	switch strings.ToLower(h) {
	case "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
		"authorization", "cookie", "keep-alive", "proxy-connection", "expect":
		return true
	}
	return false
}
