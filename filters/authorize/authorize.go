// Package authorize implements the "authorize" filter kind: ordered rules that match a request by
// method and path prefix and require values of its verified JWT claims (engine.ClaimsKey, set by
// an earlier "jwt" filter), of its verified client certificate (engine.ClientCertKey, set by
// the server for mutual TLS) and of its verified consumer (engine.ConsumerKey, set by key_auth,
// basic_auth or forward_auth).
//
// Every rule that matches the request must hold; the first one that does not answers 403 (RFC
// 6750 insufficient_scope). A request no rule matches passes. Rules only ever restrict, so adding
// one can never open a path another rule closes. A required value is a space-separated list of
// values that must all be present in the claim, where a claim counts as a set: a string split on
// spaces (the OAuth "scope" convention), an array's elements, or a single number or boolean.
package authorize

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// Config is the body of a `filter "authorize"` block.
type Config struct {
	Rules []Rule `hcl:"rule,block" json:"rules"`
}

// Rule is one `rule { … }` block.
type Rule struct {
	// Methods the rule applies to; empty means every method. A rule on GET also covers HEAD.
	Methods []string `hcl:"methods,optional" json:"methods,omitempty"`
	// PathPrefix the normalized request path must start with; default "/". A prefix ending in "/"
	// also matches the path without that slash ("/v1/admin/" covers "/v1/admin").
	PathPrefix string `hcl:"path_prefix,optional" json:"path_prefix"`
	// RequireClaims maps a claim name (dots walk into objects) to the space-separated values it
	// must contain.
	RequireClaims map[string]string `hcl:"require_claims,optional" json:"require_claims,omitempty"`
	// ClientCert requires a verified client certificate, with the listed properties.
	ClientCert *ClientCertRule `hcl:"client_cert,block" json:"client_cert,omitempty"`
	// Consumers requires a verified consumer (engine.ConsumerKey, set by key_auth, basic_auth or
	// forward_auth) whose name is one of these.
	Consumers []string `hcl:"consumers,optional" json:"consumers,omitempty"`
}

// ClientCertRule is a rule's `client_cert { … }` block: the request's connection must have
// presented a verified client certificate, and each listed attribute must hold (each is a list
// of which one value must match).
type ClientCertRule struct {
	// Subject lists subjects in RFC 2253 form ("CN=billing,O=Example").
	Subject []string `hcl:"subject,optional" json:"subject,omitempty"`
	// URISANs lists URI SANs (SPIFFE IDs); one ending in "*" matches by prefix.
	URISANs []string `hcl:"uri_sans,optional" json:"uri_sans,omitempty"`
	// DNSSANs lists DNS SANs (compared case-insensitively).
	DNSSANs []string `hcl:"dns_sans,optional" json:"dns_sans,omitempty"`
	// Fingerprint lists SHA-256 fingerprints in hex (colons allowed).
	Fingerprint []string `hcl:"fingerprint,optional" json:"fingerprint,omitempty"`
}

// Validate checks the block.
func (r *ClientCertRule) Validate() error {
	var errs []error
	for _, fp := range r.Fingerprint {
		if _, ok := normalizeFingerprint(fp); !ok {
			errs = append(errs, engine.FieldErr("fingerprint", "invalid SHA-256 fingerprint %q: want 64 hex digits (colons allowed)", fp))
		}
	}
	for name, list := range map[string][]string{"subject": r.Subject, "uri_sans": r.URISANs, "dns_sans": r.DNSSANs} {
		for _, v := range list {
			if v == "" || v == "*" {
				errs = append(errs, engine.FieldErr(name, "values must not be empty (leave the attribute out to accept any)"))
			}
		}
	}
	return errors.Join(errs...)
}

// normalizeFingerprint returns a fingerprint as lower-case hex without colons.
func normalizeFingerprint(s string) (string, bool) {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if len(s) != 64 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return "", false
		}
	}
	return s, true
}

// SetDefaults fills a rule's defaults.
func (r *Rule) SetDefaults() { r.PathPrefix = "/" }

// Validate checks one rule.
func (r *Rule) Validate() error {
	var errs []error
	if !strings.HasPrefix(r.PathPrefix, "/") {
		errs = append(errs, engine.FieldErr("path_prefix", "must start with \"/\""))
	}
	for _, m := range r.Methods {
		if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " \t/") {
			errs = append(errs, engine.FieldErr("methods", "invalid method %q: use upper-case tokens such as \"DELETE\"", m))
		}
	}
	if len(r.RequireClaims) == 0 && r.ClientCert == nil && len(r.Consumers) == 0 {
		errs = append(errs, engine.FieldErr("require_claims", "list at least one claim the rule requires, or add a client_cert block or consumers"))
	}
	for _, c := range r.Consumers {
		if c == "" {
			errs = append(errs, engine.FieldErr("consumers", "consumer names must not be empty"))
		}
	}
	for k, v := range r.RequireClaims {
		if k == "" {
			errs = append(errs, engine.FieldErr("require_claims", "claim names must not be empty"))
		}
		if len(strings.Fields(v)) == 0 {
			errs = append(errs, engine.FieldErr("require_claims", "claim %q: the required value must not be empty", k))
		}
	}
	return errors.Join(errs...)
}

// Validate checks the block.
func (c *Config) Validate() error {
	if len(c.Rules) == 0 {
		return engine.FieldErr("rule", "add at least one rule block")
	}
	return nil
}

// Register declares the "authorize" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "authorize", build)
}

func build(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
	claims := slices.ContainsFunc(cfg.Rules, func(r Rule) bool { return len(r.RequireClaims) > 0 })
	if claims && !slices.Contains(env.Earlier, "jwt") {
		return nil, errors.New(`authorize needs a "jwt" filter earlier in the same pipeline: its require_claims check the verified token's claims`)
	}
	consumers := slices.ContainsFunc(cfg.Rules, func(r Rule) bool { return len(r.Consumers) > 0 })
	if consumers && env.Logger != nil && !slices.ContainsFunc(env.Earlier, func(k string) bool {
		return k == "key_auth" || k == "basic_auth" || k == "forward_auth"
	}) {
		env.Logger.Warn("authorize rules name consumers but no key_auth, basic_auth or forward_auth filter runs before it: those rules refuse every request", "pipeline", env.Pipeline)
	}
	return New(cfg, env.Pipeline), nil
}

var decisions = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_authorize_denied_total",
	Help: "Requests the authorize filter refused, by pipeline and rule (1-based index).",
}, []string{"pipeline", "rule"})

type requirement struct {
	claim  string
	values []string
}

// certRequirement is a client_cert block, ready to match: each non-empty list must hold.
type certRequirement struct {
	subject, uriSANs, dnsSANs, fingerprint []string
}

type rule struct {
	methods   [][]byte
	anyMethod bool
	prefix    []byte
	// exact is the prefix without its trailing slash, also matched in full.
	exact   []byte
	require []requirement
	cert    *certRequirement // nil: the rule does not look at client certificates
	// consumers lists the consumer names allowed; nil: the rule does not look at the consumer.
	consumers []string
	// challenge is the WWW-Authenticate value of a refusal; err is what the logs see.
	challenge []byte
	err       error
	denied    prometheus.Counter
}

// Filter enforces the rules. It allocates nothing per request.
type Filter struct {
	rules        []rule
	unauthorized []byte
}

var (
	wwwAuthenticate = []byte("WWW-Authenticate")
	errNoClaims     = errors.New("authorize: the request has no verified claims")
)

// New builds the filter for a pipeline (whose name is the challenge's realm).
func New(cfg *Config, pipeline string) *Filter {
	realm := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, pipeline)
	if realm == "" {
		realm = "sluice"
	}
	f := &Filter{unauthorized: fmt.Appendf(nil, `Bearer realm="%s"`, realm)}
	for i, rc := range cfg.Rules {
		r := rule{anyMethod: len(rc.Methods) == 0, prefix: []byte(rc.PathPrefix)}
		if p := strings.TrimSuffix(rc.PathPrefix, "/"); p != rc.PathPrefix && p != "" {
			r.exact = []byte(p)
		}
		for _, m := range rc.Methods {
			r.methods = append(r.methods, []byte(m))
			if m == "GET" && !slices.Contains(rc.Methods, "HEAD") {
				r.methods = append(r.methods, []byte("HEAD"))
			}
		}
		names := make([]string, 0, len(rc.RequireClaims))
		for k := range rc.RequireClaims {
			names = append(names, k)
		}
		sort.Strings(names)
		var desc []string
		for _, k := range names {
			r.require = append(r.require, requirement{claim: k, values: strings.Fields(rc.RequireClaims[k])})
			desc = append(desc, k+"="+strings.Join(strings.Fields(rc.RequireClaims[k]), " "))
		}
		ch := fmt.Sprintf(`Bearer realm="%s", error="insufficient_scope"`, realm)
		if sc, ok := rc.RequireClaims["scope"]; ok && headerSafe(sc) {
			ch += fmt.Sprintf(`, scope="%s"`, strings.Join(strings.Fields(sc), " "))
		}
		r.challenge = []byte(ch)
		if cc := rc.ClientCert; cc != nil {
			r.cert = &certRequirement{subject: cc.Subject, uriSANs: cc.URISANs, dnsSANs: cc.DNSSANs}
			for _, fp := range cc.Fingerprint {
				n, _ := normalizeFingerprint(fp)
				r.cert.fingerprint = append(r.cert.fingerprint, n)
			}
			desc = append(desc, "a client certificate"+cc.describe())
		}
		if len(rc.Consumers) > 0 {
			r.consumers = rc.Consumers
			desc = append(desc, "a consumer in ["+strings.Join(rc.Consumers, " | ")+"]")
		}
		r.err = fmt.Errorf("authorize: rule %d (%s %s) requires %s", i+1, methodsLabel(rc.Methods), rc.PathPrefix, strings.Join(desc, ", "))
		r.denied = decisions.WithLabelValues(pipeline, strconv.Itoa(i+1))
		f.rules = append(f.rules, r)
	}
	return f
}

// describe lists the block's conditions for the refusal's log line.
func (r *ClientCertRule) describe() string {
	var parts []string
	for _, a := range []struct {
		name string
		list []string
	}{{"subject", r.Subject}, {"uri_sans", r.URISANs}, {"dns_sans", r.DNSSANs}, {"fingerprint", r.Fingerprint}} {
		if len(a.list) > 0 {
			parts = append(parts, a.name+" in ["+strings.Join(a.list, " | ")+"]")
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " with " + strings.Join(parts, " and ")
}

func methodsLabel(m []string) string {
	if len(m) == 0 {
		return "any method"
	}
	return strings.Join(m, ",")
}

// headerSafe reports whether s can sit in a quoted-string of a challenge.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// OnRequest checks every matching rule in order.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	method := c.Request.Header.Method()
	var claims engine.Claims
	loaded := false
	for i := range f.rules {
		r := &f.rules[i]
		if !r.matches(method, c.Path) {
			continue
		}
		if r.cert != nil {
			if cc, ok := engine.ClientCertKey.Get(c); !ok || !r.cert.holds(cc) {
				r.denied.Inc()
				c.AddFlags(engine.FlagUnauthorized)
				return c.Fail(403, r.err)
			}
		}
		if r.consumers != nil {
			if cons, ok := engine.ConsumerKey.Get(c); !ok || !slices.Contains(r.consumers, cons.ID) {
				r.denied.Inc()
				c.AddFlags(engine.FlagUnauthorized)
				return c.Fail(403, r.err)
			}
		}
		if len(r.require) == 0 {
			continue
		}
		if !loaded {
			var ok bool
			if claims, ok = engine.ClaimsKey.Get(c); !ok {
				// Only reachable if the jwt stage let a request through without claims.
				c.AddFlags(engine.FlagUnauthorized)
				c.Fail(401, errNoClaims)
				c.Response.Header.SetBytesKV(wwwAuthenticate, f.unauthorized)
				return engine.Respond
			}
			loaded = true
		}
		if !r.holds(claims) {
			r.denied.Inc()
			c.AddFlags(engine.FlagUnauthorized)
			c.Fail(403, r.err)
			c.Response.Header.SetBytesKV(wwwAuthenticate, r.challenge)
			return engine.Respond
		}
	}
	return engine.Continue
}

// OnResponse does nothing.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}

func (r *rule) matches(method, path []byte) bool {
	if !r.anyMethod {
		found := false
		for _, m := range r.methods {
			if string(m) == string(method) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if len(path) >= len(r.prefix) && string(path[:len(r.prefix)]) == string(r.prefix) {
		return true
	}
	return r.exact != nil && string(path) == string(r.exact)
}

// holds reports whether cc meets every listed condition. It does not allocate.
func (q *certRequirement) holds(cc *engine.ClientCert) bool {
	if len(q.subject) > 0 && !slices.Contains(q.subject, cc.Subject) {
		return false
	}
	if len(q.fingerprint) > 0 && !slices.Contains(q.fingerprint, cc.Fingerprint) {
		return false
	}
	if len(q.uriSANs) > 0 && !anyURI(q.uriSANs, cc.URISANs) {
		return false
	}
	if len(q.dnsSANs) > 0 && !anyDNS(q.dnsSANs, cc.DNSSANs) {
		return false
	}
	return true
}

// anyURI reports whether one of the certificate's URI SANs is one of the patterns, or starts
// with a pattern ending in "*" without it.
func anyURI(patterns, names []string) bool {
	for _, n := range names {
		for _, p := range patterns {
			if prefix, ok := strings.CutSuffix(p, "*"); ok {
				if strings.HasPrefix(n, prefix) {
					return true
				}
			} else if n == p {
				return true
			}
		}
	}
	return false
}

// anyDNS reports whether one of the certificate's DNS SANs is one of the names (DNS names are
// ASCII and case-insensitive).
func anyDNS(want, names []string) bool {
	for _, n := range names {
		for _, w := range want {
			if strings.EqualFold(n, w) {
				return true
			}
		}
	}
	return false
}

func (r *rule) holds(cl engine.Claims) bool {
	for _, req := range r.require {
		v, ok := cl.Lookup(req.claim)
		if !ok {
			return false
		}
		for _, want := range req.values {
			if !contains(v, want) {
				return false
			}
		}
	}
	return true
}

// contains reports whether claim value v, seen as a set, holds want. It does not allocate.
func contains(v any, want string) bool {
	switch x := v.(type) {
	case string:
		// Walk the space-separated words in place (strings.Fields would allocate).
		start := -1
		for i := 0; i <= len(x); i++ {
			if i == len(x) || x[i] == ' ' || x[i] == '\t' || x[i] == '\n' {
				if start >= 0 && x[start:i] == want {
					return true
				}
				start = -1
			} else if start < 0 {
				start = i
			}
		}
		return false
	case []any:
		for _, e := range x {
			if scalarEquals(e, want) {
				return true
			}
		}
		return false
	}
	return scalarEquals(v, want)
}

func scalarEquals(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case float64:
		var buf [32]byte
		return string(strconv.AppendFloat(buf[:0], x, 'f', -1, 64)) == want
	case bool:
		return strconv.FormatBool(x) == want
	}
	return false
}
