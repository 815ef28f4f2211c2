package basicauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/filters/internal/delheader"
	"golang.org/x/crypto/bcrypt"
)

var requestsTotal = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_basic_auth_requests_total",
	Help: "Requests seen by basic_auth filters, by pipeline and result (cached, verified, missing, invalid, busy).",
}, []string{"pipeline", "result"})

// Refusals, for logs and traces; the client sees only the status and the challenge.
var (
	errMissing = errors.New("basic_auth: no Basic credentials in the request")
	errInvalid = errors.New("basic_auth: wrong user name or password")
	errBusy    = errors.New("basic_auth: too many password verifications in progress (max_concurrent_bcrypt)")
)

// maxCredentialBytes bounds the base64 credentials read; longer ones are refused unread. bcrypt
// reads at most 72 bytes of a password anyway.
const maxCredentialBytes = 1024

// maxPasswordBytes is as much of a password as bcrypt reads.
const maxPasswordBytes = 72

var (
	nameAuthorization  = engine.NewHeaderName("Authorization")
	delAuthorization   = delheader.New("Authorization")
	hdrWWWAuthenticate = []byte("WWW-Authenticate")
	hdrRetryAfter      = []byte("Retry-After")
	one                = []byte("1")
)

// Register declares the "basic_auth" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "basic_auth", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		b, err := env.ReadFile(cfg.HtpasswdFile)
		if err != nil {
			return nil, engine.FieldErr("htpasswd_file", "%w", err)
		}
		users, err := parseHtpasswd(cfg.HtpasswdFile, b)
		if err != nil {
			return nil, engine.FieldErr("htpasswd_file", "%w", err)
		}
		if cfg.UserHeader != "" {
			env.SetsRequestHeaders(cfg.UserHeader)
		}
		return New(cfg, users, env.Pipeline, env.Logger)
	})
}

// Filter checks Basic credentials. One value serves every request of its pipeline concurrently.
type Filter struct {
	users      map[string]*user
	dummy      []byte // a bcrypt hash compared against for unknown users, so they take as long
	keyer      *keyer
	cache      *credCache // nil: cache_ttl = 0
	slots      chan struct{}
	forward    bool
	userHeader []byte
	challenge  []byte
	log        *slog.Logger
	// compare is bcrypt.CompareHashAndPassword; tests count its calls.
	compare func(hash, password []byte) error

	mCached, mVerified, mMissing, mInvalid, mBusy prometheus.Counter
}

// New builds the filter for users (parsed from the htpasswd file).
func New(cfg *Config, users map[string]*user, pipeline string, log *slog.Logger) (*Filter, error) {
	if log == nil {
		log = slog.Default()
	}
	// The dummy hash has the highest cost in the file: an unknown user never answers faster
	// than a known one.
	cost := bcrypt.MinCost
	for _, u := range users {
		if c, err := bcrypt.Cost(u.hash); err == nil && c > cost {
			cost = c
		}
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("sluice-basic-auth-unknown-user"), cost)
	if err != nil {
		return nil, fmt.Errorf("making the unknown-user hash: %w", err)
	}
	slots := cfg.MaxConcurrentBcrypt
	if slots == 0 {
		slots = max(1, runtime.GOMAXPROCS(0)/2)
	}
	f := &Filter{
		users:     users,
		dummy:     dummy,
		keyer:     newKeyer(),
		slots:     make(chan struct{}, slots),
		forward:   cfg.ForwardAuthorization,
		challenge: fmt.Appendf(nil, `Basic realm="%s", charset="UTF-8"`, cfg.Realm),
		log:       log,
		compare:   bcrypt.CompareHashAndPassword,
	}
	if cfg.CacheTTL > 0 {
		f.cache = newCredCache(cfg.CacheSize, int64(cfg.CacheTTL.D()))
	}
	if cfg.UserHeader != "" {
		f.userHeader = []byte(cfg.UserHeader)
	}
	f.mCached = requestsTotal.WithLabelValues(pipeline, "cached")
	f.mVerified = requestsTotal.WithLabelValues(pipeline, "verified")
	f.mMissing = requestsTotal.WithLabelValues(pipeline, "missing")
	f.mInvalid = requestsTotal.WithLabelValues(pipeline, "invalid")
	f.mBusy = requestsTotal.WithLabelValues(pipeline, "busy")
	return f, nil
}

// OnRequest authenticates the request: the consumer on the context on success; 401 with a
// challenge, or 503 when bcrypt is saturated, otherwise.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	h := &c.Request.Header
	if f.userHeader != nil {
		// Only a verified name reaches the upstream under this header.
		h.DelBytes(f.userHeader)
	}
	token, ok := basicToken(nameAuthorization.Peek(h))
	if !ok {
		f.mMissing.Inc()
		return f.refuse(c, errMissing)
	}
	now := c.Start.UnixNano()
	if c.Start.IsZero() {
		now = time.Now().UnixNano()
	}
	var key cacheKey
	if f.cache != nil {
		// A cached credential is found by its text: no decoding (cache.go).
		f.keyer.key(token, &key)
		if u, ok := f.cache.Get(&key, now); ok {
			f.mCached.Inc()
			f.accept(c, u)
			return engine.Continue
		}
	}
	return f.verify(c, token, &key, now)
}

// verify decodes a credential the cache does not hold and checks it with bcrypt; key is its
// cache key (unset without a cache).
func (f *Filter) verify(c *engine.Ctx, token []byte, key *cacheKey, now int64) engine.Verdict {
	var buf [maxCredentialBytes / 4 * 3]byte
	name, password, ok := decodeCredentials(token, buf[:])
	if !ok {
		f.mMissing.Inc()
		return f.refuse(c, errMissing)
	}
	if len(password) > maxPasswordBytes {
		// bcrypt reads only the first 72 bytes: a longer password would pass with any ending.
		f.mInvalid.Inc()
		return f.refuse(c, errInvalid)
	}
	// bcrypt costs tens of milliseconds of CPU: at most len(slots) run at once, and a request
	// finding none free is refused at once rather than queued, so a flood of wrong passwords
	// cannot take every core from the requests that need none.
	select {
	case f.slots <- struct{}{}:
	default:
		f.mBusy.Inc()
		c.Fail(503, errBusy)
		c.Response.Header.SetBytesKV(hdrRetryAfter, one)
		return engine.Respond
	}
	u := f.users[string(name)]
	var err error
	if u == nil {
		// An unknown user costs a bcrypt too: the answer's timing does not tell who exists.
		_ = f.compare(f.dummy, password)
		err = errInvalid
	} else if f.compare(u.hash, password) != nil {
		err = errInvalid
	}
	<-f.slots
	if err != nil {
		f.mInvalid.Inc()
		return f.refuse(c, err)
	}
	if f.cache != nil {
		f.cache.Put(key, u, now)
	}
	f.mVerified.Inc()
	f.accept(c, u)
	return engine.Continue
}

// OnResponse does nothing.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}

func (f *Filter) accept(c *engine.Ctx, u *user) {
	engine.ConsumerKey.Set(c, u.consumer)
	if !f.forward {
		// As DelBytes would, without working on the name again (filters/internal/delheader).
		delAuthorization.Del(&c.Request.Header)
	}
	if f.userHeader != nil {
		c.Request.Header.SetBytesK(f.userHeader, u.name)
	}
}

func (f *Filter) refuse(c *engine.Ctx, err error) engine.Verdict {
	c.AddFlags(engine.FlagUnauthorized)
	c.Fail(401, err)
	c.Response.Header.SetBytesKV(hdrWWWAuthenticate, f.challenge)
	return engine.Respond
}

// basicToken returns the credential of `Basic <token>` (the scheme case-insensitive), the base64
// text as sent, without decoding it; ok is false for another scheme, no token or one longer than
// maxCredentialBytes.
func basicToken(v []byte) (token []byte, ok bool) {
	const scheme = "basic "
	if len(v) <= len(scheme) {
		return nil, false
	}
	// "Basic " as clients write it is one comparison; another spelling is folded byte by byte.
	if string(v[:len(scheme)]) != "Basic " {
		for i := 0; i < len(scheme); i++ {
			b := v[i]
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if b != scheme[i] {
				return nil, false
			}
		}
	}
	v = v[len(scheme):]
	for len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > maxCredentialBytes {
		return nil, false
	}
	return v, true
}

// decodeCredentials decodes a token (base64 of user:password) into buf and returns the two
// parts; ok is false when it does not decode, has no ':' or its user is empty or holds a
// control character.
func decodeCredentials(token, buf []byte) (name, password []byte, ok bool) {
	if base64.StdEncoding.DecodedLen(len(token)) > len(buf) {
		return nil, nil, false
	}
	n, err := base64.StdEncoding.Decode(buf, token)
	if err != nil {
		return nil, nil, false
	}
	dec := buf[:n]
	for i, b := range dec {
		if b == ':' {
			if i == 0 {
				return nil, nil, false // no user name
			}
			return dec[:i], dec[i+1:], true
		}
		if b < 0x20 || b == 0x7f {
			return nil, nil, false // RFC 7617: no control characters in the user-id
		}
	}
	return nil, nil, false
}
