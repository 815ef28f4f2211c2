// Package cache implements the "cache" filter kind: an in-memory shared HTTP cache (RFC 9111)
// for GET and HEAD.
//
// What is stored: a GET response of a cacheable status (200, 203, 204, 300, 301, 308, 404,
// 405, 410, 414, 501; 302 and 307 only with explicit freshness) with a freshness lifetime from
// s-maxage, max-age or Expires (or default_ttl when it states none) or a validator (ETag,
// Last-Modified) to revalidate it with, unless it says no-store or private, varies on "*", sets a cookie, is streamed (over max_response_bytes) or is
// larger than max_entry_bytes. A response to a request with Authorization is stored only when
// it says public, s-maxage or must-revalidate (RFC 9111 §3.5). A no-cache response is stored
// only with a validator and revalidated before every use. Each Vary combination is its own
// variant. max_bytes bounds the whole, least recently used first out.
//
// What is served: the matching fresh variant, with Age and (status_header) X-Cache: HIT; a
// conditional request whose validator matches gets 304. A stale variant inside its
// stale-while-revalidate window is served with X-Cache: STALE while one background request
// refreshes it. Past that window a stale variant with an ETag or Last-Modified is revalidated:
// the upstream request carries If-None-Match or If-Modified-Since, and a 304 refreshes the
// variant's headers and lifetime and answers the client with the stored body (X-Cache:
// REVALIDATED). When the upstream fails with a 5xx within the variant's stale-if-error window,
// the client gets the stale variant instead (X-Cache: STALE). The request's own Cache-Control is honoured: no-store bypasses the cache,
// no-cache and max-age=0 fetch anew (and store the result), max-age=N bounds the age served,
// only-if-cached answers 504 rather than going upstream.
//
// Identical misses are coalesced: while one request fetches a URL, the others wait for it (at
// most coalesce_timeout) and are then served from the cache, so a burst of a hundred reaches
// the upstream once. A successful unsafe request (POST, PUT, DELETE, PATCH) drops the stored
// variants of its URL.
//
// With compress before cache in a pipeline the cache stores the identity body and compress
// encodes each response, hits included, for its own client.
//
// A hot reload keeps the pipeline's store when max_bytes is unchanged (see shared.go). The
// attributes beyond the reference ones are max_entry_bytes (default max_bytes/8) and
// coalesce_timeout (default 5s). Not done: storing or serving byte ranges (range requests pass
// through), and the request directives max-stale and min-fresh (ignored).
package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// Register declares the "cache" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "cache", build)
}

func build(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
	for _, k := range env.Earlier {
		if k == "cache" {
			return nil, errors.New("a pipeline may have only one cache filter")
		}
	}
	f := New(cfg, env.Pipeline)
	f.validating = env.Validating
	f.log = env.Logger
	if !env.Validating {
		// Take over the store of the configuration being replaced, if any (see shared.go).
		f.store = acquireStore(env.Pipeline, int64(cfg.MaxBytes))
		f.pipeline = env.Pipeline
		f.shared = true
	}
	if cfg.Store != "" {
		rc, err := env.RedisConfig(cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if !env.Validating {
			f.tier = newTier(cfg, rc, env.Pipeline, env.Logger)
		}
	}
	return f, nil
}

// Filter is a built cache filter; one value serves every request of its pipeline.
type Filter struct {
	store        *store
	defaultTTL   time.Duration
	maxEntry     int64
	coalesce     time.Duration
	statusHeader bool
	metrics      metricSet
	validating   bool
	pipeline     string
	shared       bool  // store comes from acquireStore and is released on Close
	tier         *tier // the Redis tier behind store, or nil
	log          *slog.Logger
	// now is the clock (tests replace it).
	now func() time.Time
	// waiting counts requests blocked on another's fetch (for tests and readiness checks).
	waiting atomic.Int64
	// bg tracks background revalidations so Close can wait for them.
	bg     sync.WaitGroup
	bgSem  chan struct{}
	closed chan struct{}
	once   sync.Once
}

// New builds a cache filter from a validated config; pipeline labels its metrics.
func New(cfg *Config, pipeline string) *Filter {
	maxEntry := int64(cfg.MaxEntryBytes)
	if maxEntry <= 0 {
		maxEntry = int64(cfg.MaxBytes) / 8
	}
	return &Filter{
		store:        newStore(int64(cfg.MaxBytes)),
		defaultTTL:   cfg.DefaultTTL.D(),
		maxEntry:     maxEntry,
		coalesce:     cfg.CoalesceTimeout.D(),
		statusHeader: cfg.StatusHeader,
		metrics:      newMetricSet(pipeline),
		bgSem:        make(chan struct{}, maxBackground),
		closed:       make(chan struct{}),
		now:          time.Now,
	}
}

// Close stops new background revalidations and waits (briefly) for running ones.
func (f *Filter) Close() error {
	first := false
	f.once.Do(func() { close(f.closed); first = true })
	if first && f.shared {
		defer releaseStore(f.pipeline, f.store)
	}
	if first && f.tier != nil {
		defer f.tier.close()
	}
	done := make(chan struct{})
	go func() { f.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return nil
}

// result is how a request was handled, for X-Cache and metrics.
type result uint8

const (
	resNone        result = iota // not a GET or HEAD: no X-Cache
	resMiss                      // went to the upstream
	resHit                       // answered fresh from the cache
	resStale                     // answered stale (while a revalidation runs, or the upstream failed)
	resRevalidated               // the upstream confirmed a stale entry with 304
)

// resultNames are the results as the cache span's sluice.cache.result shows them.
var resultNames = [...]string{resMiss: "miss", resHit: "hit", resStale: "stale", resRevalidated: "revalidated"}

var resultValues = [...][]byte{resMiss: []byte("MISS"), resHit: []byte("HIT"), resStale: []byte("STALE"),
	resRevalidated: []byte("REVALIDATED")}

// reqState is the filter's per-request state, pooled.
type reqState struct {
	hash       uint64
	result     result
	answered   bool    // this filter wrote the response
	mayStore   bool    // the response may be stored
	invalidate bool    // an unsafe method: drop the URL's variants on success
	flight     *flight // set when this request fetches for waiting ones
	authorized bool    // the request carried Authorization
	prev       *entry  // the stale variant found, for revalidation and stale-if-error
	validated  bool    // this filter added If-None-Match/If-Modified-Since from prev
}

var (
	stateKey  = engine.NewKey[*reqState]("cache")
	statePool = sync.Pool{New: func() any { return new(reqState) }}
)

var (
	hdrCacheControl = "Cache-Control"
	hdrPragma       = "Pragma"
	hdrRange        = "Range"
	hdrAuth         = "Authorization"
	hdrAge          = "Age"
	hdrXCache       = "X-Cache"
	hdrIfNoneMatch  = "If-None-Match"
	hdrIfModSince   = "If-Modified-Since"
)

// OnRequest answers from the cache when it can, else lets the request through (possibly after
// waiting for an identical one to fill the cache).
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	st := statePool.Get().(*reqState)
	*st = reqState{}
	stateKey.Set(c, st)
	req := &c.Request.Header
	get := req.IsGet()
	if !get && !req.IsHead() {
		if !req.IsOptions() && !req.IsTrace() {
			st.invalidate = true
			st.hash = f.store.hash(req.Host(), c.Request.Header.RequestURI())
		}
		return engine.Continue
	}
	st.result = resMiss
	if len(req.Peek(hdrRange)) > 0 {
		return engine.Continue // ranges are passed through, neither served nor stored
	}
	ccVals := req.PeekAll(hdrCacheControl)
	rd := parseDirectives(ccVals)
	if rd.noStore {
		return engine.Continue
	}
	noCache := rd.noCache || rd.maxAge == 0 || (len(ccVals) == 0 && hasListToken(req.PeekAll(hdrPragma), "no-cache"))
	// The key is the client's request-target as it arrived (the header's raw bytes, not
	// Request.RequestURI, which rebuilds the target from fasthttp's parsed and normalized URI
	// once anything has called Request.URI): both phases, and every request, see the same key.
	host, uri := req.Host(), c.Request.Header.RequestURI()
	h := f.store.hash(host, uri)
	st.hash = h
	st.mayStore = get
	st.authorized = len(req.Peek(hdrAuth)) > 0
	if noCache {
		f.metrics.miss.Inc()
		return engine.Continue
	}
	for attempt := 0; ; attempt++ {
		now := f.now()
		if e := f.store.lookup(h, host, uri, req); e != nil {
			age := e.age(now)
			if age < e.lifetime && (rd.maxAge < 0 || age <= secs(rd.maxAge)) {
				f.metrics.hit.Inc()
				return f.serve(c, st, e, age, resHit)
			}
			if age < e.lifetime+e.swr && !e.mustReval && rd.maxAge < 0 {
				f.revalidate(c, h, now, e)
				f.metrics.stale.Inc()
				return f.serve(c, st, e, age, resStale)
			}
			st.prev = e
		} else if f.tier != nil && attempt == 0 {
			// Another instance may have fetched it: the Redis tier before the upstream.
			if e := f.tier.get(c.Context, host, uri, now); e != nil {
				if e.size <= f.maxEntry {
					f.store.insert(h, host, uri, e)
				}
				age := e.age(now)
				if age < e.lifetime && (rd.maxAge < 0 || age <= secs(rd.maxAge)) {
					f.metrics.hit.Inc()
					f.metrics.sharedHit.Inc()
					return f.serve(c, st, e, age, resHit)
				}
			}
		}
		if rd.onlyIfCached {
			st.mayStore = false
			return c.Fail(fasthttp.StatusGatewayTimeout, errOnlyIfCached)
		}
		if !get || attempt > 0 {
			break // HEAD misses are not stored, so not coalesced; a woken waiter that still misses goes itself
		}
		fl, leader := f.store.join(h, now, f.coalesce)
		if leader {
			st.flight = fl
			break
		}
		f.waiting.Add(1)
		woken := wait(fl, f.coalesce)
		f.waiting.Add(-1)
		if !woken {
			break
		}
	}
	if get && st.prev != nil && !hasConditionals(req) {
		// Ask the upstream whether the stale copy is still good: a 304 costs no body.
		st.validated = addValidators(req, st.prev)
	}
	f.metrics.miss.Inc()
	return engine.Continue
}

var errOnlyIfCached = errors.New("only-if-cached: not in the cache")

var clientConditionals = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// hasConditionals reports whether the client sent validators or a range of its own; its
// request then goes upstream as it is.
func hasConditionals(req *fasthttp.RequestHeader) bool {
	for _, k := range clientConditionals {
		if len(req.Peek(k)) > 0 {
			return true
		}
	}
	return false
}

// addValidators adds e's validators to the request; it reports whether there were any.
func addValidators(req *fasthttp.RequestHeader, e *entry) bool {
	switch {
	case len(e.etag) > 0:
		req.SetBytesV(hdrIfNoneMatch, e.etag)
	case len(e.lastModRaw) > 0:
		req.SetBytesV(hdrIfModSince, e.lastModRaw)
	default:
		return false
	}
	return true
}

// Waiting returns how many requests are waiting for an identical request's upstream fetch.
func (f *Filter) Waiting() int { return int(f.waiting.Load()) }

// Stats returns the number of stored responses and the bytes they hold.
func (f *Filter) Stats() (entries int, bytes int64) { return f.store.stats() }

// wait blocks until fl is released or the coalescing bound passes; fasthttp gives each request
// its own goroutine, so blocking here holds only this request.
func wait(fl *flight, bound time.Duration) bool {
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-fl.done:
		return true
	case <-t.C:
		return false
	}
}

// serve writes e as the response.
func (f *Filter) serve(c *engine.Ctx, st *reqState, e *entry, age time.Duration, res result) engine.Verdict {
	st.result, st.answered, st.mayStore = res, true, false
	resp := c.Response
	if notModified(&c.Request.Header, e) {
		resp.SetStatusCode(fasthttp.StatusNotModified)
		for i := range e.headers {
			if kv := &e.headers[i]; !isContentHeader(kv.k) {
				resp.Header.AddBytesKV(kv.k, kv.v)
			}
		}
		resp.ResetBody()
	} else {
		resp.SetStatusCode(e.status)
		for i := range e.headers {
			resp.Header.AddBytesKV(e.headers[i].k, e.headers[i].v)
		}
		// A copy into the response's own pooled buffer: later stages (compress) may replace or
		// rewrite the body, and the entry must stay intact for other requests.
		resp.SetBody(e.body)
	}
	var buf [20]byte
	resp.Header.SetBytesV(hdrAge, strconv.AppendInt(buf[:0], int64(age/time.Second), 10))
	if f.statusHeader {
		resp.Header.SetBytesV(hdrXCache, resultValues[res])
	}
	return engine.Respond
}

// notModified reports whether the request's validators match e (RFC 9110 §13.1.2, §13.1.3):
// If-None-Match by weak comparison, else If-Modified-Since against Last-Modified.
func notModified(req *fasthttp.RequestHeader, e *entry) bool {
	if e.status != fasthttp.StatusOK {
		return false
	}
	if inm := req.PeekAll(hdrIfNoneMatch); len(inm) > 0 {
		if len(e.etag) == 0 {
			return false
		}
		for _, v := range inm {
			for len(v) > 0 {
				var tag []byte
				tag, v = nextElement(v)
				if (len(tag) == 1 && tag[0] == '*') || weakEqual(tag, e.etag) {
					return true
				}
			}
		}
		return false
	}
	ims := req.Peek(hdrIfModSince)
	if len(ims) == 0 || e.lastMod.IsZero() {
		return false
	}
	t, err := http.ParseTime(string(ims))
	return err == nil && !e.lastMod.After(t)
}

// weakEqual compares two entity tags ignoring the W/ prefix.
func weakEqual(a, b []byte) bool {
	if len(a) > 2 && a[0] == 'W' && a[1] == '/' {
		a = a[2:]
	}
	if len(b) > 2 && b[0] == 'W' && b[1] == '/' {
		b = b[2:]
	}
	return string(a) == string(b)
}

func isContentHeader(k []byte) bool {
	return ascii.EqualFoldLower(k, "content-type") || ascii.EqualFoldLower(k, "content-length") || ascii.EqualFoldLower(k, "content-encoding") || ascii.EqualFoldLower(k, "content-range")
}

// OnResponse stores a cacheable response, wakes the requests waiting for it, invalidates after
// unsafe methods, and sets X-Cache.
func (f *Filter) OnResponse(c *engine.Ctx) {
	st, ok := stateKey.Get(c)
	if !ok || st == nil {
		return
	}
	stateKey.Set(c, nil)
	defer releaseState(st)
	if st.result != resNone {
		c.Annotate("sluice.cache.result", resultNames[st.result])
	}
	if st.answered {
		return
	}
	req := &c.Request.Header
	status := c.Response.StatusCode()
	if st.invalidate {
		if status < 400 {
			f.store.invalidate(st.hash, req.Host(), c.Request.Header.RequestURI())
			if f.tier != nil {
				f.tier.drop(req.Host(), c.Request.Header.RequestURI())
			}
		}
		return
	}
	if st.prev != nil && f.answerFromPrev(c, st) {
		st.mayStore = false
	}
	if st.mayStore {
		if e := f.entryFor(c.Response, req, st.authorized, f.now()); e != nil {
			f.store.insert(st.hash, req.Host(), c.Request.Header.RequestURI(), e)
			if f.tier != nil {
				f.tier.put(req.Host(), c.Request.Header.RequestURI(), e, f.now())
			}
			f.metrics.stored.Inc()
			f.updateBytes()
		}
	}
	if st.flight != nil {
		f.store.release(st.hash, st.flight)
	}
	if st.result != resNone && f.statusHeader {
		c.Response.Header.SetBytesV(hdrXCache, resultValues[st.result])
	}
}

// releaseState pools st without the entry and flight it pointed to, so they can be collected.
func releaseState(st *reqState) {
	*st = reqState{}
	statePool.Put(st)
}

// heuristic lists the statuses cacheable without explicit freshness (RFC 9110 §15.1).
func heuristic(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// entryFor builds the entry to store for resp, or nil when it must not be stored.
func (f *Filter) entryFor(resp *fasthttp.Response, req *fasthttp.RequestHeader, authorized bool, now time.Time) *entry {
	status := resp.StatusCode()
	if !heuristic(status) && status != 302 && status != 307 {
		return nil
	}
	if resp.IsBodyStream() || int64(len(resp.Body())) > f.maxEntry {
		return nil
	}
	h := &resp.Header
	d := parseDirectives(h.PeekAll(hdrCacheControl))
	if d.noStore || d.private || d.invalid {
		return nil
	}
	if authorized && !d.public && d.sMaxAge < 0 && !d.mustRevalidate {
		return nil
	}
	if hasCookies(h) {
		return nil
	}
	varyVals := h.PeekAll("Vary")
	if hasListToken(varyVals, "*") {
		return nil
	}
	date := parseHTTPDate(h.Peek("Date"))
	var lifetime time.Duration
	explicit := true
	switch {
	case d.sMaxAge >= 0:
		lifetime = secs(d.sMaxAge)
	case d.maxAge >= 0:
		lifetime = secs(d.maxAge)
	case len(h.Peek("Expires")) > 0:
		exp := parseHTTPDate(h.Peek("Expires"))
		base := date
		if base.IsZero() {
			base = now
		}
		if !exp.IsZero() {
			lifetime = exp.Sub(base) // an invalid Expires means already expired (RFC 9111 §5.3)
		}
	default:
		explicit = false
		lifetime = f.defaultTTL
	}
	if !explicit && !heuristic(status) {
		return nil
	}
	var swr, sie time.Duration
	if d.swr > 0 {
		swr = secs(d.swr)
	}
	if d.sie > 0 {
		sie = secs(d.sie)
	}
	if d.noCache {
		// Storable, but never served without asking the upstream (RFC 9111 §5.2.2.4): with a
		// validator that is a cheap 304, without one storing would gain nothing.
		lifetime, swr = 0, 0
	}
	validator := len(h.Peek("ETag")) > 0 || len(h.Peek("Last-Modified")) > 0
	if lifetime <= 0 && swr == 0 && sie == 0 && !validator {
		return nil
	}
	var initialAge time.Duration
	if !date.IsZero() && now.After(date) {
		initialAge = now.Sub(date)
	}
	if a := parseSeconds(h.Peek(hdrAge)); a > initialAge {
		initialAge = a
	}
	e := &entry{
		status:     status,
		stored:     now,
		initialAge: initialAge,
		lifetime:   lifetime,
		swr:        swr,
		sie:        sie,
		mustReval:  d.mustRevalidate,
	}
	// The vary fields and their request values, copied.
	for _, v := range varyVals {
		for len(v) > 0 {
			var name []byte
			name, v = nextElement(v)
			if len(name) == 0 {
				continue
			}
			vf := varyField{name: string(name)}
			for _, rv := range req.PeekAll(vf.name) {
				vf.vals = append(vf.vals, append([]byte(nil), trim(rv)...))
			}
			e.vary = append(e.vary, vf)
		}
	}
	size := int64(len(resp.Body())) + entryOverhead
	for _, vf := range e.vary {
		size += int64(len(vf.name) + 32)
		for _, v := range vf.vals {
			size += int64(len(v) + 24)
		}
	}
	for k, v := range h.All() {
		if skipStored(k) {
			continue
		}
		size += int64(len(k) + len(v) + 32)
		e.headers = append(e.headers, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		if ascii.EqualFoldLower(k, "etag") {
			e.etag = e.headers[len(e.headers)-1].v
		}
		if ascii.EqualFoldLower(k, "last-modified") {
			e.lastModRaw = e.headers[len(e.headers)-1].v
			e.lastMod = parseHTTPDate(v)
		}
	}
	e.body = append([]byte(nil), resp.Body()...)
	e.size = size
	if size > f.maxEntry {
		return nil
	}
	return e
}

// entryOverhead approximates the bookkeeping memory of an entry beyond its bytes.
const entryOverhead = 256

var notStored = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
	"trailer", "upgrade", "proxy-authenticate", "content-length", "age", "x-cache", "date"}

// skipStored lists the response headers not stored: hop-by-hop ones, those fasthttp or the
// cache recomputes, and X-Cache.
func skipStored(k []byte) bool {
	for _, s := range notStored {
		if ascii.EqualFoldLower(k, s) {
			return true
		}
	}
	return false
}

func hasCookies(h *fasthttp.ResponseHeader) bool {
	for range h.Cookies() {
		return true
	}
	return false
}

func parseHTTPDate(v []byte) time.Time {
	if len(v) == 0 {
		return time.Time{}
	}
	t, err := http.ParseTime(string(v))
	if err != nil {
		return time.Time{}
	}
	return t
}

func parseSeconds(v []byte) time.Duration {
	v = trim(v)
	if len(v) == 0 || len(v) > 12 {
		return 0
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return secs(n)
}

func (f *Filter) updateBytes() {
	_, n := f.store.stats()
	f.metrics.bytes.Set(float64(n))
}
