package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// Register declares the "rate_limit" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "rate_limit", build)
}

func build(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	name := cfg.Name
	if name == "" {
		// Several unnamed rate_limit filters in one pipeline must still be told apart.
		n := 0
		for _, k := range env.Earlier {
			if k == "rate_limit" {
				n++
			}
		}
		name = "default"
		if n > 0 {
			name = fmt.Sprintf("default-%d", n+1)
		}
	}
	f, err := newFilter(cfg, env.Pipeline, name, log)
	if err != nil {
		return nil, err
	}
	if f.key.kind == keyClaim && !slices.Contains(env.Earlier, "jwt") {
		log.Warn("rate_limit key is a claim but no jwt filter runs before it: every request shares the anonymous key", "key", cfg.Key)
	}
	if cfg.Store != "" {
		rc, err := env.RedisConfig(cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		// sluice validate dials nothing: the filter is checked, never served.
		if !env.Validating {
			f.remote = &redisStore{
				sc:     acquireClient(rc, log),
				g:      newGCRA(cfg.Limit, cfg.Period.D(), cfg.Burst, time.Microsecond),
				prefix: "sluice:rl:" + env.Pipeline + ":" + name + ":",
			}
		}
	}
	return f, nil
}

type storeErrorMode uint8

const (
	modeLocal storeErrorMode = iota
	modeAllow
	modeDeny
)

// Filter enforces one rate limit policy. One value serves every request of its pipeline.
type Filter struct {
	name    string
	key     keySpec
	keyName []byte // the header name for header:NAME
	g       gcra   // nanoseconds, for the local store
	local   *localStore
	remote  *redisStore // nil: the local store decides
	mode    storeErrorMode
	modeStr string
	headers bool

	policyValue []byte // RateLimit-Policy field value
	limitPrefix []byte // RateLimit field value up to the r value

	seed      maphash.Seed
	anonHash  uint64
	routeHash uint64

	epoch time.Time
	// clock, when set (tests), replaces request start times as the local store's clock.
	clock func() int64

	log         *slog.Logger
	loggedEpoch atomic.Uint64

	mAllowed, mLimited prometheus.Counter
	mStoreError        prometheus.Counter
}

func newFilter(cfg *Config, pipeline, name string, log *slog.Logger) (*Filter, error) {
	ks, err := parseKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	f := &Filter{
		name:    name,
		key:     ks,
		keyName: []byte(ks.arg),
		g:       newGCRA(cfg.Limit, cfg.Period.D(), cfg.Burst, time.Nanosecond),
		headers: cfg.Headers,
		modeStr: cfg.OnStoreError,
		seed:    maphash.MakeSeed(),
		epoch:   time.Now(),
		log:     log.With("policy", name),
	}
	switch cfg.OnStoreError {
	case "allow":
		f.mode = modeAllow
	case "deny":
		f.mode = modeDeny
	case "local", "":
		f.mode, f.modeStr = modeLocal, "local"
	default:
		return nil, fmt.Errorf("on_store_error: unknown mode %q", cfg.OnStoreError)
	}
	f.local = newLocalStore(f.g, DefaultMaxKeys)
	// The anonymous key hashes under its own seed, so no key value can collide with it.
	f.anonHash = maphash.String(maphash.MakeSeed(), "anonymous")
	f.routeHash = maphash.String(f.seed, pipeline)

	// RateLimit-Policy: "NAME";q=LIMIT;w=SECONDS[;sluice-burst=BURST] (a structured field List
	// of one Item; the name is an sf-string, validated to need no escaping).
	pv := strconv.AppendQuote(nil, name)
	pv = append(pv, ";q="...)
	pv = strconv.AppendInt(pv, int64(cfg.Limit), 10)
	pv = append(pv, ";w="...)
	pv = strconv.AppendInt(pv, f.g.windowSeconds(), 10)
	if cfg.Burst > 0 {
		// Not a draft parameter: vendor-prefixed as the draft asks for extensions.
		pv = append(pv, ";sluice-burst="...)
		pv = strconv.AppendInt(pv, int64(cfg.Burst), 10)
	}
	f.policyValue = pv
	f.limitPrefix = append(strconv.AppendQuote(nil, name), ";r="...)

	f.mAllowed = mDecisions.WithLabelValues(pipeline, name, "allowed")
	f.mLimited = mDecisions.WithLabelValues(pipeline, name, "limited")
	f.mStoreError = mStoreErrorDecisions.WithLabelValues(pipeline, name, f.modeStr)
	return f, nil
}

// Close releases the shared Redis client (closed with the last filter using it).
func (f *Filter) Close() error {
	if f.remote == nil {
		return nil
	}
	r := f.remote
	f.remote = nil
	return r.sc.release()
}

var (
	errLimited          = errors.New("rate limit exceeded")
	errStoreUnavailable = errors.New("rate limit store unavailable (on_store_error = deny)")

	hdrRetryAfter = []byte("Retry-After")
	hdrPolicy     = []byte("RateLimit-Policy")
	hdrRateLimit  = []byte("RateLimit")
	one           = []byte("1")
)

// outcome carries a decision from OnRequest to OnResponse. Outcomes of the rate_limit filters of
// one request form a stack in outcomeKey: response phases run in reverse order, so each filter
// pops its own. They are pooled, so the common path allocates nothing.
type outcome struct {
	f     *Filter
	known bool  // false: no decision (store unavailable, on_store_error allow or deny)
	r, t  int64 // RateLimit r and t
	next  *outcome
	buf   [96]byte
}

var (
	outcomeKey  = engine.NewKey[*outcome]("rate_limit")
	outcomePool = sync.Pool{New: func() any { return new(outcome) }}
)

// OnRequest decides the request: admitted (Continue) or answered with 429 (or 503 when the store
// is down and on_store_error is deny).
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	o := outcomePool.Get().(*outcome)
	o.f, o.known = f, false
	o.next, _ = outcomeKey.Get(c)
	outcomeKey.Set(c, o)

	if r := f.remote; r != nil {
		ok, ahead, err := r.take(c.Context, f.redisKey(c, r.prefix))
		if err == nil {
			return f.decided(c, o, &r.g, ok, ahead)
		}
		return f.storeError(c, o, r)
	}
	ok, ahead := f.local.take(f.localHash(c), f.now(c))
	return f.decided(c, o, &f.g, ok, ahead)
}

func (f *Filter) decided(c *engine.Ctx, o *outcome, g *gcra, ok bool, ahead int64) engine.Verdict {
	o.known = true
	if ok {
		f.mAllowed.Inc()
		o.r, o.t = g.remaining(ahead), g.windowSeconds()
		return engine.Continue
	}
	f.mLimited.Inc()
	retry := g.retryAfter(ahead)
	// Retry-After and the effective window name the same moment: the draft asks that
	// Retry-After not point before the end of the window.
	o.r, o.t = 0, retry
	c.Fail(fasthttp.StatusTooManyRequests, errLimited)
	c.Response.Header.SetBytesKV(hdrRetryAfter, strconv.AppendInt(o.buf[:0], retry, 10))
	return engine.Respond
}

// storeError applies on_store_error; the mode is logged once per outage, counted per request.
func (f *Filter) storeError(c *engine.Ctx, o *outcome, r *redisStore) engine.Verdict {
	f.mStoreError.Inc()
	if e := r.sc.epoch.Load(); f.loggedEpoch.Swap(e) != e {
		f.log.Warn("rate limit store unavailable: applying on_store_error", "mode", f.modeStr, "redis", r.sc.name)
	}
	switch f.mode {
	case modeAllow:
		return engine.Continue
	case modeDeny:
		c.Fail(fasthttp.StatusServiceUnavailable, errStoreUnavailable)
		c.Response.Header.SetBytesKV(hdrRetryAfter, one)
		return engine.Respond
	}
	ok, ahead := f.local.take(f.localHash(c), f.now(c))
	return f.decided(c, o, &f.g, ok, ahead)
}

// OnResponse adds RateLimit-Policy and RateLimit to the response, whoever wrote it. The fields
// are added, not set: an upstream's own RateLimit fields stay (the draft lets a list span
// several field lines, and an intermediary must not hide a stricter upstream policy).
func (f *Filter) OnResponse(c *engine.Ctx) {
	o, _ := outcomeKey.Get(c)
	if o == nil {
		return
	}
	if o.f == f {
		outcomeKey.Set(c, o.next)
	} else {
		// Not on top (a filter between us misbehaved): unlink ours from further down.
		prev := o
		for o = o.next; o != nil && o.f != f; prev, o = o, o.next {
		}
		if o == nil {
			return
		}
		prev.next = o.next
	}
	if f.headers {
		h := &c.Response.Header
		h.AddBytesKV(hdrPolicy, f.policyValue)
		if o.known {
			b := append(o.buf[:0], f.limitPrefix...)
			b = strconv.AppendInt(b, o.r, 10)
			b = append(b, ";t="...)
			b = strconv.AppendInt(b, o.t, 10)
			h.AddBytesKV(hdrRateLimit, b)
		}
	}
	o.f, o.next = nil, nil
	outcomePool.Put(o)
}

// now is the local store's clock in nanoseconds: the request's start time, already read by the
// server, measured on the monotonic clock from the filter's creation.
func (f *Filter) now(c *engine.Ctx) int64 {
	if f.clock != nil {
		return f.clock()
	}
	if c.Start.IsZero() {
		return int64(time.Since(f.epoch))
	}
	return int64(c.Start.Sub(f.epoch))
}

// localHash is the request's key for the local store: a seeded 64-bit hash of its value.
func (f *Filter) localHash(c *engine.Ctx) uint64 {
	switch f.key.kind {
	case keyIP:
		if !c.ClientAddr.IsValid() {
			return f.anonHash
		}
		a := c.ClientAddr.As16()
		return maphash.Bytes(f.seed, a[:])
	case keyHeader:
		v := c.Request.Header.PeekBytes(f.keyName)
		if len(v) == 0 {
			return f.anonHash
		}
		return maphash.Bytes(f.seed, v)
	case keyClaim:
		v, ok := f.claim(c)
		if !ok {
			return f.anonHash
		}
		return maphash.String(f.seed, v)
	}
	return f.routeHash
}

func (f *Filter) claim(c *engine.Ctx) (string, bool) {
	cl, ok := engine.ClaimsKey.Get(c)
	if !ok {
		return "", false
	}
	v, ok := cl.String(f.key.arg, ",")
	return v, ok && v != ""
}

// maxKeyPart is the longest key value used as is in a Redis key; longer ones are hashed.
const maxKeyPart = 128

// redisKey is the request's Redis key: prefix, then the kind and the value, or "anonymous".
func (f *Filter) redisKey(c *engine.Ctx, prefix string) string {
	switch f.key.kind {
	case keyIP:
		if !c.ClientAddr.IsValid() {
			return prefix + "anonymous"
		}
		return prefix + "ip:" + c.ClientAddr.String()
	case keyHeader:
		v := c.Request.Header.PeekBytes(f.keyName)
		if len(v) == 0 {
			return prefix + "anonymous"
		}
		return prefix + "h:" + keyPart(string(v))
	case keyClaim:
		v, ok := f.claim(c)
		if !ok {
			return prefix + "anonymous"
		}
		return prefix + "c:" + keyPart(v)
	}
	return prefix + "route"
}

func keyPart(v string) string {
	if len(v) <= maxKeyPart {
		return "=" + v
	}
	sum := sha256.Sum256([]byte(v))
	return "#" + hex.EncodeToString(sum[:])
}
