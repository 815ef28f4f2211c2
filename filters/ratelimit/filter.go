package ratelimit

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/bits"
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
	if f.key.kind == keyConsumer && !slices.ContainsFunc(env.Earlier, isAuthKind) {
		log.Warn("rate_limit key is the consumer but no key_auth, basic_auth or forward_auth filter runs before it: every request shares the anonymous key", "key", cfg.Key)
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
				g:      newGCRA(cfg.Limit, cfg.Period.D(), cfg.burst(), time.Microsecond),
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
	keyName engine.HeaderName // the header name for header:NAME
	g       gcra              // nanoseconds, for the local store
	local   *localStore
	remote  *redisStore // nil: the local store decides
	mode    storeErrorMode
	modeStr string
	headers bool
	carry   bool // the key's value may change before the response phase: carry r and t

	policy      engine.ResponseField // the RateLimit-Policy field
	limitPrefix []byte               // RateLimit field value up to the r value

	seed      maphash.Seed
	anonHash  uint64
	routeHash uint64
	// ip4Xor keys an IPv4 client's address for the local store (localHash).
	ip4Xor uint64

	epoch time.Time
	// clock, when set (tests), replaces request start times as the local store's clock.
	clock func() int64

	log         *slog.Logger
	loggedEpoch atomic.Uint64
	closeOnce   sync.Once

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
		keyName: engine.NewHeaderName(ks.arg),
		g:       newGCRA(cfg.Limit, cfg.Period.D(), cfg.burst(), time.Nanosecond),
		headers: cfg.Headers,
		modeStr: cfg.OnStoreError,
		seed:    maphash.MakeSeed(),
		epoch:   time.Now(),
		log:     log.With("policy", name),
		carry:   ks.kind == keyHeader || ks.kind == keyClaim,
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
	var rnd [4]byte
	crand.Read(rnd[:]) // never fails (crypto/rand panics rather than return an error)
	f.ip4Xor = uint64(binary.LittleEndian.Uint32(rnd[:]))

	// RateLimit-Policy: "NAME";q=LIMIT;w=SECONDS[;sluice-burst=BURST] (a structured field List
	// of one Item; the name is an sf-string, validated to need no escaping).
	pv := strconv.AppendQuote(nil, name)
	pv = append(pv, ";q="...)
	pv = strconv.AppendInt(pv, int64(cfg.Limit), 10)
	pv = append(pv, ";w="...)
	pv = strconv.AppendInt(pv, f.g.windowSeconds(), 10)
	// Not a draft parameter: vendor-prefixed as the draft asks for extensions.
	pv = append(pv, ";sluice-burst="...)
	pv = strconv.AppendInt(pv, int64(cfg.burst()), 10)
	f.policy = engine.NewResponseField("RateLimit-Policy", string(pv))
	f.limitPrefix = append(strconv.AppendQuote(nil, name), ";r="...)

	f.mAllowed = mDecisions.WithLabelValues(pipeline, name, "allowed")
	f.mLimited = mDecisions.WithLabelValues(pipeline, name, "limited")
	f.mStoreError = mStoreErrorDecisions.WithLabelValues(pipeline, name, f.modeStr)
	return f, nil
}

// Close releases the shared Redis client (closed with the last filter using it). The filter is
// left as it is: a request still running after the drain timeout sees a closed client, an error.
func (f *Filter) Close() error {
	if f.remote == nil {
		return nil
	}
	var err error
	f.closeOnce.Do(func() { err = f.remote.sc.release() })
	return err
}

var (
	errLimited          = errors.New("rate limit exceeded")
	errStoreUnavailable = errors.New("rate limit store unavailable (on_store_error = deny)")

	hdrRetryAfter = []byte("Retry-After")
	one           = []byte("1")

	// RateLimit, normalised once (engine.ResponseHeaderName: fasthttp's AddBytesKV would copy
	// and case-fold the name on every response).
	hdrRateLimit = engine.NewResponseHeaderName("RateLimit")
)

// outcome carries a decision from OnRequest to OnResponse where the response phase cannot
// simply look again: every Redis decision (no second round trip), every refusal (r = 0 and t
// must name the moment Retry-After named), and admissions keyed by a header or a claim (a later
// filter may remove the header before the response phase). Other local admissions (ip, route)
// carry nothing: the response phase reads the key's state again, which costs less. Outcomes of the
// rate_limit filters of one request form a stack in outcomeKey (response phases run in reverse
// order, so each filter finds its own on top), and are pooled.
type outcome struct {
	f     *Filter
	known bool  // false: no decision (store unavailable, on_store_error allow or deny)
	r, t  int64 // RateLimit r and t
	next  *outcome
}

var (
	outcomeKey  = engine.NewKey[*outcome]("rate_limit")
	outcomePool = sync.Pool{New: func() any { return new(outcome) }}
)

func (f *Filter) push(c *engine.Ctx) *outcome {
	o := outcomePool.Get().(*outcome)
	o.f, o.known = f, false
	o.next, _ = outcomeKey.Get(c)
	outcomeKey.Set(c, o)
	return o
}

// pop removes f's outcome from the request's stack, or returns nil if it has none.
func (f *Filter) pop(c *engine.Ctx) *outcome {
	top, _ := outcomeKey.Get(c)
	if top == nil {
		return nil
	}
	if top.f == f {
		outcomeKey.Set(c, top.next)
		return top
	}
	for prev, o := top, top.next; o != nil; prev, o = o, o.next {
		if o.f == f {
			prev.next = o.next
			return o
		}
	}
	return nil
}

// OnRequest decides the request: admitted (Continue) or answered with 429 (or 503 when the store
// is down and on_store_error is deny).
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	if r := f.remote; r != nil {
		o := f.push(c)
		ok, ahead, err := r.take(c.Context, f.redisKey(c, r.prefix))
		if err != nil {
			return f.storeError(c, o, r)
		}
		if ok {
			f.mAllowed.Inc()
			o.r, o.t = r.g.fields(ahead)
			o.known = true
			f.annotate(c, "allowed", o.r)
			return engine.Continue
		}
		return f.refuse(c, o, &r.g, ahead)
	}
	ok, ahead := f.local.take(f.localHash(c), f.now(c))
	if ok {
		f.mAllowed.Inc()
		if c.Recording() { // only then is the remaining quota worth computing
			r, _ := f.g.fields(ahead)
			f.annotate(c, "allowed", r)
		}
		if f.headers && f.carry {
			o := f.push(c)
			o.r, o.t = f.g.fields(ahead)
			o.known = true
		}
		return engine.Continue
	}
	var o *outcome
	if f.headers {
		o = f.push(c)
	}
	return f.refuse(c, o, &f.g, ahead)
}

// refuse answers 429 with Retry-After; o (nil when no fields are written) records r = 0 and t =
// Retry-After, the same moment, as the draft asks that Retry-After not point before the end of
// the effective window.
func (f *Filter) refuse(c *engine.Ctx, o *outcome, g *gcra, ahead int64) engine.Verdict {
	f.mLimited.Inc()
	f.annotate(c, "limited", 0)
	retry := g.retryAfter(ahead)
	c.AddFlags(engine.FlagRateLimited)
	c.Fail(fasthttp.StatusTooManyRequests, errLimited)
	var buf [20]byte
	c.Response.Header.SetBytesKV(hdrRetryAfter, strconv.AppendInt(buf[:0], retry, 10))
	if o != nil {
		o.known, o.r, o.t = true, 0, retry
	}
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
	if ok {
		f.mAllowed.Inc()
		o.r, o.t = f.g.fields(ahead)
		o.known = true
		return engine.Continue
	}
	return f.refuse(c, o, &f.g, ahead)
}

// OnResponse adds RateLimit-Policy and RateLimit to the response, whoever wrote it. The fields
// are added, not set: an upstream's own RateLimit fields stay (the draft lets a list span
// several field lines, and an intermediary must not hide a stricter upstream policy).
func (f *Filter) OnResponse(c *engine.Ctx) {
	if !f.headers && f.remote == nil {
		return // nothing to add, and the local store carries no outcome without fields
	}
	o := f.pop(c)
	if f.headers {
		h := &c.Response.Header
		f.policy.AddTo(h)
		switch {
		case o != nil && o.known:
			f.addRateLimit(h, o.r, o.t)
		case o == nil && f.remote == nil:
			// Admitted by the local store: read the key's state again, as of the same clock.
			ahead := f.local.peek(f.localHash(c), f.now(c))
			r, t := f.g.fields(ahead)
			f.addRateLimit(h, r, t)
		}
	}
	if o != nil {
		o.f, o.next = nil, nil
		outcomePool.Put(o)
	}
}

// addRateLimit adds the RateLimit field, its value written straight into the header's own
// buffer (engine.ResponseHeaderName.AddValue): the name, digits and separators hold no line break.
func (f *Filter) addRateLimit(h *fasthttp.ResponseHeader, r, t int64) {
	if v := hdrRateLimit.AddValue(h); v != nil {
		*v = f.appendRateLimit(*v, r, t)
		return
	}
	var buf [96]byte
	hdrRateLimit.Add(h, f.appendRateLimit(buf[:0], r, t))
}

func (f *Filter) appendRateLimit(b []byte, r, t int64) []byte {
	b = append(b, f.limitPrefix...)
	b = appendInt(b, r)
	b = append(b, ";t="...)
	return appendInt(b, t)
}

// appendInt is strconv.AppendInt(b, v, 10) for the fields' counts, two digits a step from a
// table, written in place at b's end, without strconv's general entry (measured under callgrind:
// about 140 instructions a number through strconv for the bench's six-digit r).
func appendInt(b []byte, v int64) []byte {
	if uint64(v) < 10 { // RateLimit's t, nearly always
		return append(b, byte('0'+v))
	}
	if v < 0 {
		return strconv.AppendInt(b, v, 10)
	}
	u := uint64(v)
	// The number of digits: log10 from the bit length (1233/4096 ≈ log10(2)), corrected by one
	// comparison.
	n := (bits.Len64(u) * 1233) >> 12
	if u >= pow10[n] {
		n++
	}
	n = max(n, 1)
	b = slices.Grow(b, n)
	i := len(b) + n
	b = b[:i]
	for u >= 100 {
		q := u / 100
		r := (u - q*100) * 2
		i -= 2
		b[i], b[i+1] = digitPairs[r], digitPairs[r+1]
		u = q
	}
	if u >= 10 {
		b[i-2], b[i-1] = digitPairs[u*2], digitPairs[u*2+1]
	} else {
		b[i-1] = byte('0' + u)
	}
	return b
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
	1e15, 1e16, 1e17, 1e18, 1e19}

const digitPairs = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" +
	"30313233343536373839" + "40414243444546474849" + "50515253545556575859" +
	"60616263646566676869" + "70717273747576777879" + "80818283848586878889" + "90919293949596979899"

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
		a := c.ClientAddr.As16() // an IPv4 address as IPv4-mapped: the same client either way
		if lo := binary.BigEndian.Uint64(a[8:]); lo>>32 == 0xffff && binary.BigEndian.Uint64(a[:8]) == 0 {
			// IPv4: the address itself, masked by a secret and multiplied by 2^64/φ (Fibonacci
			// hashing) so that the store's shard, the top bits, varies with every bit of it. A
			// bijection, so no two IPv4 clients share a key, and cheaper than hashing 16 bytes.
			return (lo&0xffffffff ^ f.ip4Xor) * 0x9E3779B97F4A7C15
		}
		return maphash.Bytes(f.seed, a[:])
	case keyHeader:
		v := f.keyName.Peek(&c.Request.Header)
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
	case keyCert:
		v, ok := f.cert(c)
		if !ok {
			return f.anonHash
		}
		return maphash.String(f.seed, v)
	case keyConsumer:
		v, ok := consumer(c)
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

// cert is the request's client certificate property the key names ("", false: none).
func (f *Filter) cert(c *engine.Ctx) (string, bool) {
	cc, ok := engine.ClientCertKey.Get(c)
	if !ok {
		return "", false
	}
	var v string
	switch f.key.arg {
	case "fingerprint":
		v = cc.Fingerprint
	case "subject":
		v = cc.Subject
	case "uri_san":
		if len(cc.URISANs) > 0 {
			v = cc.URISANs[0]
		}
	case "dns_san":
		if len(cc.DNSSANs) > 0 {
			v = cc.DNSSANs[0]
		}
	}
	return v, v != ""
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
		v := f.keyName.Peek(&c.Request.Header)
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
	case keyCert:
		v, ok := f.cert(c)
		if !ok {
			return prefix + "anonymous"
		}
		return prefix + "x509:" + keyPart(v)
	case keyConsumer:
		v, ok := consumer(c)
		if !ok {
			return prefix + "anonymous"
		}
		return prefix + "u:" + keyPart(v)
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

// annotate records the decision on the filter's span: the policy, the result (allowed or
// limited) and the requests remaining in the window.
func (f *Filter) annotate(c *engine.Ctx, result string, remaining int64) {
	c.Annotate("sluice.rate_limit.policy", f.name)
	c.Annotate("sluice.rate_limit.result", result)
	c.AnnotateInt("sluice.rate_limit.remaining", remaining)
}
