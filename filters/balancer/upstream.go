// Package balancer implements `upstream` blocks: the Terminal that ends every pipeline. It picks
// a target with the configured policy (round_robin, weighted_round_robin, least_request,
// p2c_ewma, ring_hash, maglev, random), proxies the request over that target's keep-alive pool,
// and keeps the pool healthy: active HTTP health checks,
// outlier ejection on consecutive failures, retries on other targets within a retry budget,
// connect and request timeouts, DNS re-resolution, and TLS to targets. Health state lives in
// atomics per target, in a package-level registry keyed by upstream name and address, so it
// survives a configuration reload for the targets that stay.
package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// Register declares the upstream implementation.
func Register(r *engine.Registry) {
	engine.RegisterUpstream(r, Build)
}

// Resolver resolves target host names; net.DefaultResolver is one.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// resolver is what new upstreams resolve names with (tests replace it).
var resolver atomic.Pointer[Resolver]

func init() {
	var r Resolver = net.DefaultResolver
	resolver.Store(&r)
}

var (
	_ engine.Upstream       = (*Upstream)(nil)
	_ engine.UpstreamStatus = (*Upstream)(nil)
	_ io.Closer             = (*Upstream)(nil)
)

// Upstream is a built upstream block. It is safe for concurrent use.
type Upstream struct {
	name   string
	cfg    *Config
	log    *slog.Logger
	hash   hashSource
	hashed bool

	// streamLog bounds the lines about responses streamed for their size or for want of
	// held_response_budget: under memory pressure every large response is one.
	streamLog engine.LogLimit

	set atomic.Pointer[targetSet]

	maxConns       int
	connectTimeout time.Duration
	requestTimeout time.Duration
	perTryTimeout  time.Duration
	deadlineSlack  time.Duration // how late a connection's deadline may fire (upstreamConn.arm)
	slotWait       time.Duration
	maxHeld        int
	upgradeIdle    time.Duration
	forwarded      bool // the server's forwarded_header: send Forwarded (RFC 7239)
	attempts       int
	on             retryOn
	budget         retryBudget
	outlier        *OutlierDetectionConfig
	metrics        *upstreamMetrics
	inflight       atomic.Int64
	circuit        *circuit
	// streamTimeout is the server's stream_timeout (stream.go; 0: none); liveChunked is
	// stream_responses: every response of unknown length is live.
	streamTimeout time.Duration
	liveChunked   bool

	// groups are the configured targets with what they resolved to; guarded by mu.
	mu       sync.Mutex
	groups   []*group
	resolver Resolver

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// group is one target block and the addresses its host resolved to.
type group struct {
	cfg   TargetConfig
	host  string
	port  string
	ip    bool // the host is an IP literal: never re-resolved
	tls   tlsSettings
	addrs []string
}

// targetSet is the current list of targets and the policy built over it; it is replaced as a
// whole when DNS answers change.
type targetSet struct {
	targets []*target
	picker  picker
	// h2: every target is on the HTTP/2 client, whose exchange reads a streamed request body
	// through what retry.grpc_on keeps of it (grpc.go); the HTTP/1.1 exchange reads the client's
	// stream itself and keeps its own first read (stream.go), and the two cannot share a body.
	h2 bool
}

// Build makes the Upstream for an upstream block. Under env.Validating it checks files and
// settings but resolves no name and starts nothing.
func Build(name string, cfg *Config, env *engine.BuildEnv) (engine.Upstream, error) {
	if cfg.Timeouts == nil {
		cfg.Timeouts = &TimeoutsConfig{}
	}
	cfg.Timeouts.fill()
	u := &Upstream{
		name:           name,
		cfg:            cfg,
		log:            env.Logger,
		maxConns:       cfg.MaxConnectionsPerTarget,
		connectTimeout: cfg.Timeouts.Connect.D(),
		requestTimeout: cfg.Timeouts.Request.D(),
		metrics:        newUpstreamMetrics(name),
		circuit:        newCircuit(name, cfg.CircuitBreaker),
		stop:           make(chan struct{}),
		resolver:       *resolver.Load(),
	}
	if u.log == nil {
		u.log = slog.Default()
	}
	if u.maxConns <= 0 {
		u.maxConns = defaultMaxConns
	}
	// A request that finds every slot of its target taken waits briefly for one, then moves on.
	u.slotWait = min(u.connectTimeout, 100*time.Millisecond)
	u.maxHeld = 64 << 20
	if env.Server != nil {
		// An upgraded connection (WebSocket) is closed after this long without traffic.
		u.upgradeIdle = env.Server.IdleTimeout.D()
		u.forwarded = env.Server.ForwardedHeader
		u.streamTimeout = env.Server.StreamTimeout.D()
	}
	u.liveChunked = cfg.StreamResponses
	if env.Server != nil && env.Server.MaxResponseBytes > 0 {
		u.maxHeld = int(env.Server.MaxResponseBytes)
	}
	var err error
	if u.hash, err = parseHashOn(cfg.HashOn); err != nil {
		return nil, err
	}
	u.hashed = u.hash.kind != hashNone
	if r := cfg.Retry; r != nil {
		u.attempts = min(max(*r.Attempts, 0), maxRetryAttempts) // Validate reports larger values
		u.on = compileRetryOn(r.On, r.GRPCOn)
		u.budget.pct = int64(*r.BudgetPercent)
		u.perTryTimeout = r.PerTryTimeout.D()
	}
	u.outlier = cfg.OutlierDetection
	u.deadlineSlack = u.requestTimeout / deadlineSlackDivisor
	if u.perTryTimeout > 0 {
		u.deadlineSlack = min(u.requestTimeout, u.perTryTimeout) / deadlineSlackDivisor
	}

	for _, tc := range cfg.Targets {
		host, port, err := net.SplitHostPort(tc.Address)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", tc.Address, err)
		}
		var ca []byte
		if tc.CAFile != "" {
			if ca, err = env.ReadFile(tc.CAFile); err != nil {
				return nil, fmt.Errorf("target %q: reading ca_file: %w", tc.Address, err)
			}
		}
		ts, err := loadTLS(tc, host, ca)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", tc.Address, err)
		}
		if ts.cert, err = clientCert(tc, env); err != nil {
			return nil, fmt.Errorf("target %q: %w", tc.Address, err)
		}
		g := &group{cfg: tc, host: host, port: port, tls: ts}
		if ip, err := netip.ParseAddr(host); err == nil {
			g.ip = true
			g.addrs = []string{net.JoinHostPort(ip.String(), port)}
		}
		u.groups = append(u.groups, g)
	}
	if env.Validating {
		u.set.Store(&targetSet{picker: newPicker(cfg.Policy, nil)})
		return u, nil
	}

	u.circuit.share(name, cfg.Targets)
	u.resolveAll(context.Background())
	u.rebuild()
	registerLive(u) // series.go
	if u.hasNames() {
		u.wg.Add(1)
		go u.dnsLoop(cfg.DNSRefresh.D())
	}
	if cfg.HealthCheck != nil {
		u.wg.Add(1)
		go u.healthLoop(cfg.HealthCheck)
	}
	return u, nil
}

// Close stops the health checks and DNS refreshes and releases the targets. Requests still in
// flight finish on their connections.
func (u *Upstream) Close() error {
	u.closeOnce.Do(func() {
		close(u.stop)
		u.wg.Wait()
		u.circuit.release()
		if s := u.set.Swap(&targetSet{picker: &roundRobin{}}); s != nil {
			for _, t := range s.targets {
				t.close()
				targetGone(u, t.addr) // series.go
			}
		}
		unregisterLive(u)
	})
	return nil
}

// Serve proxies the request to a target, retrying on others as the retry block allows, and
// leaves the upstream's response (or a short error) in c.Response.
func (u *Upstream) Serve(c *engine.Ctx) {
	// The hash key is taken from the request as the client sent it, before prepare removes
	// headers.
	var key uint64
	var hasKey bool
	if u.hashed {
		key, hasKey = u.hash.key(c)
	}
	x := acquireExchange(c)
	defer releaseExchange(x)
	x.rfc7239 = u.forwarded
	x.prepare(c)
	defer x.restore(c)
	if x.upgrade {
		if x.streamed {
			// A protocol switch with a body longer than its head brought (or chunked): the
			// tunnel's request is written whole, so it is refused rather than cut (stream.go).
			c.Fail(fasthttp.StatusBadRequest, errUpgradeBody)
			return
		}
		u.serveUpgrade(c, x, u.upgradeIdle)
		return
	}
	// A tunnel (above) is not counted: it lasts as long as its connection, which the server's
	// connection limits bound.
	if !u.circuit.enter() {
		u.metrics.circuitRequests.Inc()
		c.AddFlags(engine.FlagCircuitOpen)
		c.Fail(fasthttp.StatusServiceUnavailable, u.circuit.errRequests)
		return
	}
	u.serveCounted(c, x, key, hasKey)
}

// serveCounted is Serve for a request the circuit breaker counts: it picks targets, makes the
// attempts and settles the response. It is a function of its own for its defer: Go compiles a
// function's defers inline only while its returns times its defers stay at most 15, and Serve
// with all three defers and this part's returns was past that: a defer record built and run
// through the runtime on every request (about 270 instructions).
func (u *Upstream) serveCounted(c *engine.Ctx, x *exchange, key uint64, hasKey bool) {
	defer u.circuit.leave()
	set := u.set.Load()
	start := time.Now()
	now := start.UnixNano()
	u.budget.onRequest(now)
	// The pipeline's balancer block may override the timeouts and the retries (engine.Overrides).
	reqTimeout, perTry := u.requestTimeout, u.perTryTimeout
	x.attempts = u.attempts
	if p := c.Pipeline; p != nil {
		if o := &p.Overrides; o.RequestTimeout > 0 {
			reqTimeout = o.RequestTimeout
		}
		if o := &p.Overrides; o.PerTryTimeout > 0 {
			perTry = o.PerTryTimeout
		}
		if o := &p.Overrides; o.SetAttempts {
			x.attempts = min(max(o.RetryAttempts, 0), maxRetryAttempts)
		}
		if reqTimeout != u.requestTimeout || perTry != u.perTryTimeout {
			// The upstream's slack is a fraction of its own timeouts: a shorter one here must
			// not fire that late.
			shortest := reqTimeout
			if perTry > 0 {
				shortest = min(shortest, perTry)
			}
			x.slack = min(u.deadlineSlack, shortest/deadlineSlackDivisor)
		}
	}
	deadline := start.Add(reqTimeout)
	// A gRPC call's grpc-timeout bounds it too (grpc.go), and goes upstream reduced.
	grpcCall := engine.IsGRPC(&c.Request.Header)
	var grpcTimed bool
	if grpcCall {
		var d time.Time
		if d, grpcTimed = grpcDeadline(&c.Request.Header, start); grpcTimed && d.Before(deadline) {
			deadline = d
			x.slack = grpcDeadlineSlack(u, start, d)
		}
		if u.on.grpc != 0 && c.Request.IsBodyStream() && set.h2 {
			// Kept for a retry on grpc_on (up to maxGRPCReplay bytes).
			x.replay = newReplaySource(c.Request.BodyStream())
		}
	}

	idempotent := isIdempotent(&c.Request.Header)
	obs, _ := c.Observer().(engine.AttemptObserver)

	var (
		lastErr  error
		lastFail failure
		haveResp bool
		body     *upstreamBody
		retrying bool // a slot of circuit_breaker.max_retries is held for the attempt
		why      retryReason
	)
	for attempt := 0; ; attempt++ {
		i := set.picker.pick(set.targets, key, hasKey, x.tried[:x.ntried], u.inflight.Load(), now)
		if i < 0 {
			if attempt == 0 {
				u.metrics.noTarget.Inc()
				c.AddFlags(engine.FlagNoHealthyUpstream)
				c.Fail(fasthttp.StatusServiceUnavailable, errNoTarget)
				return
			}
			break
		}
		t := set.targets[i]
		x.tried[x.ntried] = i
		x.ntried++
		if attempt > 0 {
			u.metrics.retries[why].Inc()
		}
		tryDeadline := deadline
		if perTry > 0 {
			if d := time.Unix(0, now).Add(perTry); d.Before(tryDeadline) {
				tryDeadline = d
			}
		}
		var fail failure
		var err error
		var rtt time.Duration
		// The first attempt starts when Serve did (a clock read less); a retry when the
		// previous attempt ended.
		begin := start
		if attempt > 0 {
			begin = time.Unix(0, now)
		}
		if grpcTimed {
			setGRPCTimeout(c, x, begin, tryDeadline)
		}
		fail, rtt, body, now, err = u.attempt(c, t, x, begin, tryDeadline, obs)
		if retrying {
			u.circuit.endRetry()
			retrying = false
		}
		if x.replay != nil && x.replay.lost() {
			x.unreplayable = true // more was sent than was kept
		}
		c.Attempts++
		c.Target = t.addr
		c.UpstreamTime += rtt
		lastFail, lastErr, haveResp = fail, err, fail == failNone
		// A client that went away, or a streamed body that went out further than its first
		// read (stream.go), or any of it to an HTTP/2 target beyond what retry.grpc_on's
		// replay kept (h2transport.go, grpc.go), ends the attempts, whatever the retry block says.
		gone := errors.Is(err, errClientGone)
		retry := !gone && x.replayable() && u.shouldRetry(fail, c.Response.StatusCode(), idempotent, attempt, x.attempts, deadline, now)
		grpcRetry := false
		if !retry && !gone && x.replayable() && grpcCall && fail == failNone {
			retry = u.shouldRetryGRPC(c, x, body, attempt, deadline, now)
			grpcRetry = retry
		}
		if !retry {
			break
		}
		why = retryReasonOf(reasonOf(fail, err, c.Response.StatusCode()), grpcRetry) // reasons.go
		if !u.circuit.startRetry() {
			// Too many retries in progress: this attempt's outcome is the answer.
			u.metrics.circuitRetries.Inc()
			break
		}
		retrying = true
		if body != nil {
			// Discard the body of the response we retry past (its connection is closed if unread).
			_ = body.Close()
			body = nil
		}
	}
	if retrying {
		u.circuit.endRetry() // the picker found no target for the retry
	}
	if !haveResp {
		c.AddFlags(flagsOf(lastFail, lastErr)) // reasons.go
		c.Fail(failStatus(lastFail, lastErr), fmt.Errorf("upstream %s: %w", u.name, lastErr))
		return
	}
	c.FromUpstream = true
	if c.Response.StatusCode() >= 500 {
		c.AddFlags(engine.FlagUpstream5xx)
	}
	finishResponse(c, x)
	if body != nil && grpcCall && body.empty() {
		// A trailers-only gRPC answer (its HEADERS frame ended the stream) stays one: without
		// a body stream the client's HTTP/2 stream ends with the header section, where the
		// status is. Streamed, it would end with an empty DATA frame after headers that gRPC
		// clients do not read a status from.
		_ = body.Close()
		body = nil
		c.Response.Header.SetContentLength(0)
	}
	if body == nil {
		return
	}
	streamed, err := holdOrStream(c, body, u.maxHeld, x, u.liveChunked)
	if streamed {
		// Later filters see a body stream: compression, caching and Wasm response buffering
		// leave it alone.
		if x.live {
			u.log.Debug("streaming a live response", "target", c.Target, "content_type", string(c.Response.Header.ContentType()))
		} else {
			u.logStreamed(c, x.overBudget)
		}
	}
	if err != nil {
		c.AddFlags(engine.FlagUpstreamReset)
		c.FromUpstream = false
		c.Fail(fasthttp.StatusBadGateway, fmt.Errorf("upstream %s: reading the response: %w", u.name, err))
	}
}

var (
	errNoTarget    = errors.New("no healthy target")
	errUpgradeBody = errors.New("a request to switch protocols with a streamed body")
)

// attempt sends the prepared request to t once, starting at now, and records the outcome in t's
// health state. It returns the attempt's round-trip time, the body when roundTrip left it on the
// connection, the time the attempt ended (Unix nanoseconds), and its error.
func (u *Upstream) attempt(c *engine.Ctx, t *target, x *exchange, now, deadline time.Time, obs engine.AttemptObserver) (failure, time.Duration, *upstreamBody, int64, error) {
	begin := now
	if !t.tryAcquire() {
		if !u.circuit.waitPending() {
			u.metrics.circuitPending.Inc()
			return failConnect, 0, nil, time.Now().UnixNano(), u.circuit.errPending
		}
		ok := t.acquire(u.slotWait)
		u.circuit.donePending()
		if !ok {
			t.m.requests.Inc()
			return failConnect, 0, nil, time.Now().UnixNano(), errNoFreeConns
		}
		begin = time.Time{} // waited for a slot: read the clock again below
	}
	defer t.release()
	if x.noHost {
		// An HTTP/1.0 client may send no Host; the upstream gets the target's own.
		c.Request.Header.SetHost(t.name)
	}
	var tok any
	if obs != nil {
		tok, x.trace = obs.StartAttempt(c, t.addr, c.Request, x.trace[:0])
		if len(x.trace) > 0 && x.traceHdr != 0 {
			// The observer's lines replace the client's trace context (every copy of it).
			if x.traceHdr&hasTraceparent != 0 {
				c.Request.Header.Del(hdrTraceparent)
			}
			if x.traceHdr&hasTracestate != 0 {
				c.Request.Header.Del(hdrTracestate)
			}
			x.traceHdr = 0
		}
		if tok != nil || len(x.trace) > 0 {
			// A traced request's span work and trace context lines are not the upstream's
			// latency. Otherwise StartAttempt only noted the attempt's start: the clock read
			// before it stands, as without an observer (a time.Now less per request).
			begin = time.Time{}
		}
	}
	if begin.IsZero() {
		begin = time.Now()
	}
	t.st.inflight.Add(1)
	u.inflight.Add(1)
	var body *upstreamBody
	var err error
	if t.h2 != nil {
		body, err = u.roundTripH2(c, t, x, begin, deadline)
	} else {
		body, err = u.roundTrip(c, t, x, begin, deadline)
	}
	endTime := time.Now()
	rtt := endTime.Sub(begin)
	u.inflight.Add(-1)
	t.st.inflight.Add(-1)
	fail := classify(err)
	if err != nil && fail != failClient {
		// An HTTP/2 client's body that failed ends its ClientContext before the read of it
		// returns the error: whichever the exchange saw first, the client's body failed.
		if bf := engine.BodyFailure(c.ClientContext); bf != nil {
			err, fail = &clientBodyError{bf}, failClient
		}
	}
	if err != nil && fail != failClient && clientGone(c) {
		// Cut short for a client that went away: it says nothing about the target. (A
		// failure of its streamed body also ends the HTTP/2 handler's ClientContext; that
		// one is answered for what it was: 413, 408 or 400.)
		if obs != nil {
			obs.EndAttempt(c, tok, 0, errClientGone)
		}
		return failReset, rtt, nil, endTime.UnixNano(), errClientGone
	}

	if fail == failClient {
		// The client's streamed body failed (stream.go): nothing to hold against the target,
		// whose connection was closed mid-request.
		if obs != nil {
			obs.EndAttempt(c, tok, 0, err)
		}
		return fail, rtt, nil, endTime.UnixNano(), err
	}
	status := 0
	if fail == failNone {
		status = c.Response.StatusCode()
	}
	end := endTime.UnixNano()
	// For /readyz: a dial or TLS failure says the target cannot be reached; a full connection
	// pool says nothing about it.
	if fail != failConnect {
		t.st.noteConnect(true, end)
	} else if !errors.Is(err, errNoFreeConns) {
		t.st.noteConnect(false, end)
	}
	t.st.requests.Add(1)
	t.m.requests.Inc()
	if fail == failNone {
		t.m.latency.Observe(rtt)
		t.st.observeLatency(rtt, end)
	} else {
		// A refused connection is quick: record it as slow, or p2c_ewma would favour a dead
		// target for its fast failures.
		t.st.observeLatency(max(rtt, u.connectTimeout), end)
	}
	if fail != failNone || status >= 500 {
		t.m.failures[reasonOf(fail, err, status)].Inc() // reasons.go
		u.onFailure(t, end)
	} else {
		u.onSuccess(t, end)
	}
	if obs != nil {
		obs.EndAttempt(c, tok, status, err)
	}
	return fail, rtt, body, end, err
}

// shouldRetry decides whether a failed attempt is tried again on another target.
func (u *Upstream) shouldRetry(fail failure, status int, idempotent bool, attempt, attempts int, deadline time.Time, now int64) bool {
	if attempt >= attempts || now >= deadline.UnixNano() {
		return false
	}
	switch fail {
	case failClient:
		return false
	case failConnect:
		// Nothing was sent: safe for any method.
		if !u.on.connectFailure {
			return false
		}
	case failReset:
		if !u.on.reset || !idempotent {
			return false
		}
	case failTimeout:
		// A per-try timeout is the gateway's own 504.
		if !(u.on.timeout || u.on.status(fasthttp.StatusGatewayTimeout)) || !idempotent {
			return false
		}
	default:
		if !u.on.status(status) || !idempotent {
			return false
		}
	}
	if !u.budget.allow(now) {
		u.metrics.budgetExhausted.Inc()
		return false
	}
	return true
}

// isIdempotent reports whether a request may be sent twice (RFC 9110 §9.2.2).
func isIdempotent(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsPut() || h.IsDelete() || h.IsOptions() || h.IsTrace()
}

// onFailure counts a failed request and ejects the target after consecutive_failures of them,
// for base_ejection_time doubled on each repeated ejection, unless max_ejection_percent of the
// targets are already ejected.
func (u *Upstream) onFailure(t *target, now int64) {
	t.st.noteFailure(now)
	n := t.st.consecFailures.Add(1)
	o := u.outlier
	if o == nil || int(n) < o.ConsecutiveFailures {
		return
	}
	until := t.st.ejectedUntil.Load()
	if until > now {
		return
	}
	set := u.set.Load()
	ejected := 0
	for _, x := range set.targets {
		if x.st.ejectedUntil.Load() > now {
			ejected++
		}
	}
	allowed := *o.MaxEjectionPercent * len(set.targets) / 100
	if *o.MaxEjectionPercent > 0 {
		allowed = max(allowed, 1)
	}
	if ejected >= allowed {
		return
	}
	k := min(t.st.ejections.Load(), 10)
	d := o.BaseEjectionTime.D() << k
	if limit := max(maxEjection, o.BaseEjectionTime.D()); d > limit {
		d = limit
	}
	if t.st.ejectedUntil.CompareAndSwap(until, now+int64(d)) {
		// It comes back after the ejection with a clean slate: the latency penalties of its
		// failures would otherwise keep p2c_ewma away from it long after.
		t.st.resetLatency()
		t.closeIdle()
		t.st.ejections.Add(1)
		t.st.consecFailures.Store(0)
		t.m.ejections.Inc()
		u.log.Warn("target ejected", "target", t.addr, "for", d.String(), "consecutive_failures", n)
	}
}

// maxEjection caps the doubling of ejection times.
const maxEjection = 5 * time.Minute

// onSuccess resets the failure count; a target that has served well for a base ejection time
// since its last ejection starts doubling from the base again.
func (u *Upstream) onSuccess(t *target, now int64) {
	if t.st.consecFailures.Load() != 0 {
		t.st.consecFailures.Store(0)
	}
	if u.outlier != nil && t.st.ejections.Load() > 0 &&
		now-t.st.ejectedUntil.Load() > int64(u.outlier.BaseEjectionTime.D()) {
		t.st.ejections.Store(0)
	}
}

// Healthy reports whether some target can take a request now: it is available (healthy, not
// ejected) and its latest connection attempt did not fail in the last connectFailWindow.
func (u *Upstream) Healthy() bool {
	now := time.Now().UnixNano()
	for _, t := range u.set.Load().targets {
		if t.st.available(now) && !t.st.connectFailing(now) {
			return true
		}
	}
	return false
}

// Status is the upstream's state for the admin API's /upstreams.
type Status struct {
	Name    string         `json:"name"`
	Policy  string         `json:"policy"`
	Healthy bool           `json:"healthy"`
	Targets []TargetStatus `json:"targets"`
}

// TargetStatus is one target's state.
type TargetStatus struct {
	Address             string     `json:"address"`
	Configured          string     `json:"configured"`
	Weight              int        `json:"weight"`
	TLS                 bool       `json:"tls"`
	Protocol            string     `json:"protocol"` // http1, or the upstream's protocol for an HTTP/2 client's target
	Healthy             bool       `json:"healthy"`
	Available           bool       `json:"available"`
	ConnectFailing      bool       `json:"connect_failing"`
	EjectedUntil        *time.Time `json:"ejected_until,omitempty"`
	Ejections           int        `json:"ejections"`
	InFlight            int64      `json:"in_flight"`
	EWMALatencyMS       float64    `json:"ewma_latency_ms"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	ProbeSuccesses      int        `json:"consecutive_probe_successes"`
	ProbeFailures       int        `json:"consecutive_probe_failures"`
	RecentFailures      int        `json:"recent_failures"`
	Requests            uint64     `json:"requests"`
	Failures            uint64     `json:"failures"`
}

// recentWindow is how far back "recent_failures" looks.
const recentWindow = time.Minute

// Status returns the state of every target (a Status value).
func (u *Upstream) Status() any {
	now := time.Now()
	nowNS := now.UnixNano()
	st := Status{Name: u.name, Policy: u.cfg.Policy, Healthy: u.Healthy(), Targets: []TargetStatus{}}
	for _, t := range u.set.Load().targets {
		s := t.st
		ts := TargetStatus{
			Address:             t.addr,
			Configured:          t.name,
			Weight:              t.weight,
			TLS:                 t.tls,
			Protocol:            protocolHTTP1,
			Healthy:             s.healthy.Load(),
			Available:           s.available(nowNS),
			ConnectFailing:      s.connectFailing(nowNS),
			Ejections:           int(s.ejections.Load()),
			InFlight:            s.inflight.Load(),
			EWMALatencyMS:       s.decayedLatency(nowNS) / 1e6,
			ConsecutiveFailures: int(s.consecFailures.Load()),
			ProbeSuccesses:      int(s.probeOK.Load()),
			ProbeFailures:       int(s.probeFail.Load()),
			RecentFailures:      s.recentFailures(nowNS, recentWindow),
			Requests:            s.requests.Load(),
			Failures:            s.failures.Load(),
		}
		if t.h2 != nil {
			ts.Protocol = u.cfg.Protocol
		}
		if until := s.ejectedUntil.Load(); until > nowNS {
			tm := time.Unix(0, until).UTC()
			ts.EjectedUntil = &tm
		}
		st.Targets = append(st.Targets, ts)
	}
	return st
}

// hasNames reports whether some target is a host name to re-resolve.
func (u *Upstream) hasNames() bool {
	for _, g := range u.groups {
		if !g.ip {
			return true
		}
	}
	return false
}

// resolveAll resolves every host name; it reports whether any answer changed. A failed lookup
// keeps the previous addresses.
func (u *Upstream) resolveAll(ctx context.Context) bool {
	changed := false
	for _, g := range u.groups {
		if g.ip {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ips, err := u.resolver.LookupHost(lctx, g.host)
		cancel()
		if err != nil || len(ips) == 0 {
			u.log.Warn("resolving a target", "host", g.host, "err", err)
			continue
		}
		addrs := make([]string, 0, len(ips))
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				ip = a.Unmap().String()
			}
			addrs = append(addrs, net.JoinHostPort(ip, g.port))
		}
		sort.Strings(addrs)
		addrs = dedupe(addrs)
		u.mu.Lock()
		if !equalStrings(addrs, g.addrs) {
			g.addrs = addrs
			changed = true
		}
		u.mu.Unlock()
	}
	return changed
}

// rebuild makes a new target set from the groups' addresses, keeping the targets (and their
// connection pools) whose address stays, and closes the ones that went away.
func (u *Upstream) rebuild() {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := map[string]*target{}
	if s := u.set.Load(); s != nil {
		for _, t := range s.targets {
			old[t.addr] = t
		}
	}
	var ts []*target
	seen := map[string]bool{}
	for _, g := range u.groups {
		for _, a := range g.addrs {
			if seen[a] {
				continue
			}
			seen[a] = true
			if t, ok := old[a]; ok {
				ts = append(ts, t)
				delete(old, a)
				continue
			}
			ts = append(ts, newTarget(u.name, g.cfg, a, g.tls, u))
		}
	}
	allH2 := len(ts) > 0
	for _, t := range ts {
		allH2 = allH2 && t.h2 != nil
	}
	u.set.Store(&targetSet{targets: ts, picker: newPicker(u.cfg.Policy, ts), h2: allH2})
	for _, t := range old {
		t.close()
		targetGone(u, t.addr) // series.go: a DNS refresh removed it
	}
}

// dnsLoop re-resolves the target names every dns_refresh; while a name has no address yet
// (its first lookups failed), it retries every second.
func (u *Upstream) dnsLoop(every time.Duration) {
	defer u.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-u.stop
		cancel() // abandon a lookup in progress
	}()
	for {
		wait := every
		if u.unresolved() {
			wait = min(every, time.Second)
		}
		tm := time.NewTimer(wait)
		select {
		case <-u.stop:
			tm.Stop()
			return
		case <-tm.C:
		}
		if u.resolveAll(ctx) {
			u.rebuild()
			u.log.Info("targets re-resolved", "targets", len(u.set.Load().targets))
		}
	}
}

// unresolved reports whether some target name has no address.
func (u *Upstream) unresolved() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, g := range u.groups {
		if len(g.addrs) == 0 {
			return true
		}
	}
	return false
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// StreamLogPerSecond is how many lines a second an upstream logs about responses it streams
// because of their size or of held_response_budget; the counter
// sluice_responses_streamed_over_budget_total counts every one.
const StreamLogPerSecond = 10

// logStreamed logs that c's response streams rather than being held: it is larger than
// max_response_bytes, or overBudget, the server's held_response_budget had no room for it.
func (u *Upstream) logStreamed(c *engine.Ctx, overBudget bool) {
	ok, suppressed := u.streamLog.Allow(time.Now(), StreamLogPerSecond)
	if !ok {
		return
	}
	attrs := []any{"target", c.Target, "content_length", c.Response.Header.ContentLength()}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	if overBudget {
		u.log.Info("streaming a response: the server's held_response_budget is used up", attrs...)
		return
	}
	u.log.Info("streaming a response larger than max_response_bytes", append(attrs, "max_response_bytes", u.maxHeld)...)
}
