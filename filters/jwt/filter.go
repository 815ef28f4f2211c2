package jwt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var requestsTotal = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_jwt_requests_total",
	Help: "Requests seen by jwt filters, by pipeline and result (cached, verified, missing, invalid, unavailable).",
}, []string{"pipeline", "result"})

// errMissingToken is the failure logged when no source held a token.
var errMissingToken = errors.New("jwt: no bearer token in the request")

// errKeysUnavailable is the 503 failure when no key set was ever fetched.
var errKeysUnavailable = errors.New("jwt: signing keys unavailable")

// descriptions are the error_description values of the WWW-Authenticate challenge: short, fixed,
// never derived from the token.
var descriptions = map[error]string{
	ErrMalformed:      "malformed token",
	ErrTooLarge:       "token too large",
	ErrAlgNone:        "algorithm not allowed",
	ErrAlgUnsupported: "algorithm not allowed",
	ErrAlgNotAllowed:  "algorithm not allowed",
	ErrCrit:           "unsupported token header",
	ErrHeader:         "unsupported token header",
	ErrUnknownKey:     "unknown signing key",
	ErrKeyMismatch:    "signing key does not fit algorithm",
	ErrSignature:      "invalid signature",
	ErrNoExpiry:       "token has no expiry",
	ErrExpired:        "token expired",
	ErrNotYetValid:    "token not yet valid",
	ErrIssuedFuture:   "token issued in the future",
	ErrClaims:         "malformed claims",
	ErrIssuer:         "wrong issuer",
	ErrAudience:       "wrong audience",
}

var wwwAuthenticate = []byte("WWW-Authenticate")

// keySource provides the current key set: fixed for files and secrets, fetched for jwks_url.
type keySource interface {
	current() *keySet
	// refetch asks for fresh keys (a kid was unknown, or none were ever loaded); it may refuse
	// within a cooldown and return the current set.
	refetch() *keySet
}

type staticKeys struct{ set *keySet }

func (s staticKeys) current() *keySet { return s.set }
func (s staticKeys) refetch() *keySet { return s.set }

type forward struct {
	claim  string
	header []byte
}

// Filter verifies bearer tokens. One value serves every request of its pipeline concurrently.
type Filter struct {
	keys      keySource
	remote    *remoteKeys // nil unless jwks_url
	shared    bool        // remote is a shared, running fetcher to release on Close
	allowed   map[string]bool
	issuer    string
	audiences []string
	leeway    time.Duration
	traceSub  bool // trace_subject
	sources   []source
	fwd       []forward
	cache     *tokenCache
	now       func() time.Time
	log       *slog.Logger
	closeOnce sync.Once

	challengeMissing []byte
	challenges       map[error][]byte

	mCached, mVerified, mMissing, mInvalid, mUnavailable prometheus.Counter
}

func newFilter(cfg *Config, env *engine.BuildEnv, opt options) (*Filter, error) {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	envLog := *env
	envLog.Logger = log
	set, err := loadKeys(cfg, &envLog)
	if err != nil {
		return nil, err
	}
	f := &Filter{
		allowed:   map[string]bool{},
		issuer:    cfg.Issuer,
		audiences: slices.Clone(cfg.Audiences),
		leeway:    cfg.Leeway.D(),
		traceSub:  cfg.TraceSubject,
		now:       opt.now,
		log:       log,
	}
	for _, a := range cfg.Algorithms {
		f.allowed[a] = true
	}
	if f.now == nil {
		f.now = time.Now
	}
	if !opt.noCache {
		f.cache = newTokenCache()
	}
	for _, s := range cfg.From {
		src, err := parseSource(s)
		if err != nil {
			return nil, err
		}
		f.sources = append(f.sources, src)
	}
	claims := make([]string, 0, len(cfg.ForwardClaims))
	for c := range cfg.ForwardClaims {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	for _, c := range claims {
		f.fwd = append(f.fwd, forward{claim: c, header: []byte(cfg.ForwardClaims[c])})
		// The server removes a client's header spelling this one with '_' for '-'.
		env.SetsRequestHeaders(cfg.ForwardClaims[c])
	}

	if set != nil {
		f.keys = staticKeys{set}
	} else {
		tune := func(r *remoteKeys) {
			if opt.cooldown > 0 {
				r.cooldown = opt.cooldown
			}
			if opt.retry > 0 {
				r.retry = opt.retry
			}
		}
		every := cfg.JWKSRefresh.D()
		if opt.every > 0 {
			every = opt.every
		}
		var r *remoteKeys
		if env.Validating {
			// Checked, never started, never shared.
			r = newRemoteKeys(cfg.JWKSURL, every, log)
			tune(r)
		} else {
			r = acquireRemoteKeys(cfg.JWKSURL, every, log, tune)
			f.shared = true
		}
		f.keys, f.remote = r, r
	}

	realm := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, env.Pipeline)
	if realm == "" {
		realm = "sluice"
	}
	f.challengeMissing = fmt.Appendf(nil, `Bearer realm="%s"`, realm)
	f.challenges = map[error][]byte{}
	for e, d := range descriptions {
		f.challenges[e] = fmt.Appendf(nil, `Bearer realm="%s", error="invalid_token", error_description="%s"`, realm, d)
	}

	f.mCached = requestsTotal.WithLabelValues(env.Pipeline, "cached")
	f.mVerified = requestsTotal.WithLabelValues(env.Pipeline, "verified")
	f.mMissing = requestsTotal.WithLabelValues(env.Pipeline, "missing")
	f.mInvalid = requestsTotal.WithLabelValues(env.Pipeline, "invalid")
	f.mUnavailable = requestsTotal.WithLabelValues(env.Pipeline, "unavailable")
	return f, nil
}

// Close releases the JWKS fetcher; the last filter using it stops its refresh. Closing twice is
// harmless.
func (f *Filter) Close() error {
	f.closeOnce.Do(func() {
		if f.shared {
			f.remote.release()
		}
	})
	return nil
}

// OnRequest authenticates the request: claims on the context and forwarded headers on success,
// a 401 or 503 answer otherwise.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	// Strip client-sent copies first, whatever happens next: only verified values reach upstream.
	for i := range f.fwd {
		c.Request.Header.DelBytes(f.fwd[i].header)
	}
	tok := f.token(c)
	if len(tok) == 0 {
		f.mMissing.Inc()
		c.Annotate("sluice.jwt.outcome", "missing")
		c.AddFlags(engine.FlagUnauthorized)
		c.Fail(401, errMissingToken)
		c.Response.Header.SetBytesKV(wwwAuthenticate, f.challengeMissing)
		return engine.Respond
	}
	if len(tok) > MaxTokenBytes {
		return f.invalid(c, ErrTooLarge)
	}
	set := f.keys.current()
	if set == nil {
		if set = f.keys.refetch(); set == nil {
			f.mUnavailable.Inc()
			c.Annotate("sluice.jwt.outcome", "keys_unavailable")
			return c.Fail(503, fmt.Errorf("%w: %w", errKeysUnavailable, f.remote.unavailable()))
		}
	}
	now := f.now()
	if f.cache != nil {
		if e := f.cache.get(tok, set, now.UnixNano()); e != nil {
			f.mCached.Inc()
			c.Annotate("sluice.jwt.outcome", "valid_cached")
			f.accept(c, e)
			return engine.Continue
		}
	}
	e, err := f.verify(tok, set, now)
	if err != nil {
		return f.invalid(c, err)
	}
	if f.cache != nil {
		e.token = bytes.Clone(tok)
		f.cache.put(e, now.UnixNano())
	}
	f.mVerified.Inc()
	c.Annotate("sluice.jwt.outcome", "valid")
	f.accept(c, e)
	return engine.Continue
}

// OnResponse does nothing.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}

func (f *Filter) invalid(c *engine.Ctx, err error) engine.Verdict {
	f.mInvalid.Inc()
	c.Annotate("sluice.jwt.outcome", "invalid")
	c.AddFlags(engine.FlagUnauthorized)
	c.Fail(401, fmt.Errorf("jwt: %w", err))
	ch := f.challenges[err]
	if ch == nil {
		ch = f.challenges[ErrMalformed]
	}
	c.Response.Header.SetBytesKV(wwwAuthenticate, ch)
	return engine.Respond
}

func (f *Filter) accept(c *engine.Ctx, e *cacheEntry) {
	// The claims map may be shared with other requests through the cache: readers must not
	// modify it.
	engine.ClaimsKey.Set(c, e.claims)
	if f.traceSub && c.Recording() {
		if sub, ok := e.claims["sub"].(string); ok {
			c.Annotate("sluice.jwt.subject", sub)
		}
	}
	for i := range f.fwd {
		if v := e.fwd[i]; v != nil {
			c.Request.Header.SetBytesKV(f.fwd[i].header, v)
		}
	}
}

// token returns the first token found in the configured sources, or nil.
func (f *Filter) token(c *engine.Ctx) []byte {
	for i := range f.sources {
		s := &f.sources[i]
		var v []byte
		switch s.kind {
		case 'h':
			v = s.header.Peek(&c.Request.Header)
			var ok bool
			if v, ok = cutBearer(v); !ok && s.bearer {
				continue // another scheme (Basic, …) is not a bearer token
			}
		case 'c':
			v = c.Request.Header.CookieBytes(s.name)
		case 'q':
			v = c.Request.URI().QueryArgs().PeekBytes(s.name)
		}
		v = trimSpace(v)
		if len(v) > 0 {
			return v
		}
	}
	return nil
}

// trimSpace is bytes.TrimSpace, with nothing to do for a token that neither starts nor ends
// with a byte TrimSpace could remove (every ASCII byte above the space, and every token's).
func trimSpace(v []byte) []byte {
	if len(v) > 0 && v[0] > ' ' && v[0] < utf8.RuneSelf && v[len(v)-1] > ' ' && v[len(v)-1] < utf8.RuneSelf {
		return v
	}
	return bytes.TrimSpace(v)
}

// cutBearer strips a case-insensitive "Bearer " scheme; ok reports whether it was there.
func cutBearer(v []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(v) < len(scheme) {
		return v, false
	}
	if string(v[:len(scheme)]) == "Bearer " { // as clients write it: one compare
		return v[len(scheme):], true
	}
	for i := 0; i < len(scheme); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return v, false
		}
	}
	return v[len(scheme):], true
}

// verify parses and checks tok against set (refetching once, within the cooldown, on an unknown
// kid) and returns a cache entry for it.
func (f *Filter) verify(tok []byte, set *keySet, now time.Time) (*cacheEntry, error) {
	t, err := Parse(tok)
	if err != nil {
		return nil, err
	}
	if !f.allowed[t.Alg] {
		return nil, ErrAlgNotAllowed
	}
	a := algorithms[t.Alg]
	keys, known := set.candidates(t.Kid)
	if !known {
		// Perhaps the issuer rotated keys since the last refresh. The cooldown bounds how often a
		// flood of made-up kids can make us fetch.
		if fresh := f.keys.refetch(); fresh != nil && fresh != set {
			set = fresh
			keys, known = set.candidates(t.Kid)
		}
		if !known {
			return nil, ErrUnknownKey
		}
	}
	fits, ok := false, false
	for _, k := range keys {
		if !k.fits(a) {
			continue
		}
		fits = true
		if jwsbb.Verify(k.pub, a.name, t.SigningInput, t.Signature) == nil {
			ok = true
			break
		}
	}
	if !fits {
		return nil, ErrKeyMismatch
	}
	if !ok {
		return nil, ErrSignature
	}
	from, expires, err := f.checkClaims(t.Claims, now)
	if err != nil {
		return nil, err
	}
	claims := engine.Claims(t.Claims)
	e := &cacheEntry{set: set, claims: claims, from: from, expires: expires, fwd: make([][]byte, len(f.fwd))}
	for i, fw := range f.fwd {
		if v, ok := claims.String(fw.claim, ","); ok && headerValueOK(v) {
			e.fwd[i] = []byte(v)
		}
	}
	return e, nil
}

// checkClaims validates exp (required), nbf, iat, iss and aud, and returns the span (Unix
// nanoseconds) in which the token may be served from the cache: [from, until).
func (f *Filter) checkClaims(cl map[string]any, now time.Time) (from, until int64, err error) {
	nowS := float64(now.UnixNano()) / 1e9
	lw := f.leeway.Seconds()
	// notBefore stays in seconds relative to nowS so large claim values cannot overflow int64.
	notBefore := math.Inf(-1)
	v, ok := cl["exp"]
	if !ok {
		return 0, 0, ErrNoExpiry
	}
	exp, ok := v.(float64)
	if !ok {
		return 0, 0, ErrClaims
	}
	// RFC 7519 §4.1.4: the token must not be accepted on or after exp.
	if nowS >= exp+lw {
		return 0, 0, ErrExpired
	}
	if v, ok := cl["nbf"]; ok {
		nbf, ok := v.(float64)
		if !ok {
			return 0, 0, ErrClaims
		}
		if nowS < nbf-lw {
			return 0, 0, ErrNotYetValid
		}
		notBefore = max(notBefore, nbf-lw)
	}
	if v, ok := cl["iat"]; ok {
		iat, ok := v.(float64)
		if !ok {
			return 0, 0, ErrClaims
		}
		if iat-lw > nowS {
			return 0, 0, ErrIssuedFuture
		}
		notBefore = max(notBefore, iat-lw)
	}
	if f.issuer != "" {
		if iss, _ := cl["iss"].(string); iss != f.issuer {
			return 0, 0, ErrIssuer
		}
	}
	if len(f.audiences) > 0 && !f.audienceOK(cl["aud"]) {
		return 0, 0, ErrAudience
	}
	ttl := math.Min(exp+lw-nowS, cacheMaxTTL.Seconds())
	if notBefore > math.Inf(-1) {
		// notBefore <= nowS here, so this is a non-positive offset.
		from = now.UnixNano() + int64(math.Max(notBefore-nowS, -cacheMaxTTL.Seconds())*1e9)
	}
	return from, now.UnixNano() + int64(ttl*1e9), nil
}

func (f *Filter) audienceOK(v any) bool {
	switch aud := v.(type) {
	case string:
		return slices.Contains(f.audiences, aud)
	case []any:
		for _, x := range aud {
			if s, ok := x.(string); ok && slices.Contains(f.audiences, s) {
				return true
			}
		}
	}
	return false
}

// headerValueOK refuses claim values that would break or smuggle headers.
func headerValueOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
