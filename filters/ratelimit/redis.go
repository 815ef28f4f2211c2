package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// gcraScript is one GCRA decision, atomic on the Redis server, on Redis' own clock (TIME), so
// gateways whose clocks disagree still share one exact limit. KEYS[1] is the key; ARGV[1] the
// emission interval T and ARGV[2] the tolerance tau, both in microseconds; ARGV[3], which only
// tests pass, replaces TIME so they can drive the clock, and ARGV[4] (tests too) lengthens the
// key's expiry by that many milliseconds: the expiry runs on Redis' real clock, which a loaded
// test machine moves on further between two requests than the driven one. It returns
// {admitted (1 or 0), TAT - now in microseconds}. The key expires when its TAT passes: from then
// on it would decide exactly like an absent key, so Redis holds only keys that carry
// information. Lua numbers are doubles: microseconds since 1970 (~2^51) stay exact;
// string.format('%d') writes them back in full (Lua's default number format would round them to
// 14 digits).
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
if tat - tolerance > now then
  return {0, tat - now}
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)) + tonumber(ARGV[4] or 0))
return {1, tat - now}
`)

// probeEvery is how often, while Redis is marked down, one request tries it again.
const probeEvery = 200 * time.Millisecond

// errStoreDown is returned without trying Redis while it is marked down between probes.
var errStoreDown = errors.New("redis store marked unavailable after a failure")

// sharedClient is the go-redis client of one redis block of one configuration, shared by every
// rate_limit filter that names the block, and closed when the last of them is closed (when the
// configuration is retired). It also holds the block's up/down state, so an outage is detected,
// logged and probed once for all of them.
type sharedClient struct {
	name    string
	addr    string
	timeout time.Duration
	client  redis.UniversalClient
	log     *slog.Logger
	refs    int // guarded by clientsMu
	key     *engine.RedisConfig

	down      atomic.Bool
	epoch     atomic.Uint64 // incremented when an outage starts
	nextProbe atomic.Int64  // while down: monotonic nanoseconds of the next probe
	// clock, when set (tests), replaces monoNow as the probes' clock, so that a test decides
	// when a probe is due instead of racing the wall clock.
	clock func() int64

	mUp      prometheus.Gauge
	mOutages prometheus.Counter
	mErrors  prometheus.Counter
	mLatency *metrics.Histogram
}

var (
	clientsMu sync.Mutex
	clients   = map[*engine.RedisConfig]*sharedClient{}
	// monoStart is the origin of the monotonic clock used for probes.
	monoStart = time.Now()
)

// acquireClient returns the client for rc, creating it on first use. The client dials lazily:
// creating it touches no network.
func acquireClient(rc *engine.RedisConfig, log *slog.Logger) *sharedClient {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if sc, ok := clients[rc]; ok {
		sc.refs++
		return sc
	}
	timeout := rc.Timeout.D()
	if timeout <= 0 {
		timeout = 50 * time.Millisecond
	}
	sc := &sharedClient{
		name: rc.Name, addr: rc.Where(), timeout: timeout, refs: 1, key: rc,
		log: log.With("redis", rc.Name, "address", rc.Where()),
		// Every wait is bounded by the block's timeout: dialing, waiting for a pooled connection,
		// writing, reading. The per-command context deadline bounds the sum. No retries: a retry
		// could not finish within the same deadline anyway; the breaker below decides when to try
		// again. (A cluster client still follows MOVED/ASK redirects: those are no retries.)
		client:   rc.NewClient(engine.RedisClientOptions{Timeout: timeout, MaxRetries: -1}),
		mUp:      mRedisUp.WithLabelValues(rc.Name),
		mOutages: mRedisOutages.WithLabelValues(rc.Name),
		mErrors:  mRedisErrors.WithLabelValues(rc.Name),
		mLatency: mRedisLatency.WithLabelValues(rc.Name),
	}
	sc.mUp.Set(1)
	clients[rc] = sc
	return sc
}

// release drops one reference; the last one closes the client.
func (sc *sharedClient) release() error {
	clientsMu.Lock()
	sc.refs--
	last := sc.refs == 0
	if last {
		delete(clients, sc.key)
	}
	clientsMu.Unlock()
	if !last {
		return nil
	}
	if err := sc.client.Close(); err != nil {
		return fmt.Errorf("closing redis client %q: %w", sc.name, err)
	}
	return nil
}

func monoNow() int64 { return int64(time.Since(monoStart)) }

// now is the probes' clock: monoNow unless a test drives it.
func (sc *sharedClient) now() int64 {
	if sc.clock != nil {
		return sc.clock()
	}
	return monoNow()
}

// usable reports whether a request may use Redis now, and whether it is a probe: always while
// the block is up; while it is down, one request per probeEvery (the probe), so a dead Redis
// costs the other requests nothing.
func (sc *sharedClient) usable(now int64) (ok, probe bool) {
	if !sc.down.Load() {
		return true, false
	}
	next := sc.nextProbe.Load()
	if now >= next && sc.nextProbe.CompareAndSwap(next, now+int64(probeEvery)) {
		return true, true
	}
	return false, false
}

func (sc *sharedClient) failed(err error) {
	sc.mErrors.Inc()
	// From the failure on, not from the start of the command, which may be a timeout ago.
	sc.nextProbe.Store(sc.now() + int64(probeEvery))
	if sc.down.CompareAndSwap(false, true) {
		sc.epoch.Add(1)
		sc.mOutages.Inc()
		sc.mUp.Set(0)
		sc.log.Warn("rate limit store unreachable: rate_limit filters apply on_store_error until it answers again", "err", err)
	}
}

// succeeded records a successful decision. Only a probe ends an outage: a command sent before
// the outage began and answered late says nothing about Redis now.
func (sc *sharedClient) succeeded(probe bool) {
	if probe && sc.down.CompareAndSwap(true, false) {
		sc.mUp.Set(1)
		sc.log.Info("rate limit store reachable again: shared limits resume")
	}
}

// redisStore is one filter's view of a shared client: its key prefix and GCRA in microseconds.
type redisStore struct {
	sc     *sharedClient
	g      gcra
	prefix string
}

// take runs one decision for key. It returns whether the request is admitted and TAT - now in
// microseconds, or an error when Redis is unavailable (never after more than the block's timeout).
func (r *redisStore) take(ctx context.Context, key string) (bool, int64, error) {
	return r.takeAt(ctx, key, nil)
}

// testExpirySlack keeps a key that tests decide on a driven clock from expiring in real time
// between two of their requests.
const testExpirySlack = time.Minute

// takeAt is take with, when at is not nil, *at (microseconds) as Redis' clock: for tests.
func (r *redisStore) takeAt(ctx context.Context, key string, at *int64) (bool, int64, error) {
	ok, probe := r.sc.usable(r.sc.now())
	if !ok {
		return false, 0, errStoreDown
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, r.sc.timeout)
	start := time.Now()
	var cmd *redis.Cmd
	if at == nil {
		cmd = gcraScript.Run(ctx, r.sc.client, []string{key}, r.g.interval, r.g.tolerance)
	} else {
		cmd = gcraScript.Run(ctx, r.sc.client, []string{key}, r.g.interval, r.g.tolerance, *at, testExpirySlack.Milliseconds())
	}
	res, err := cmd.Int64Slice()
	cancel()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("rate limit script returned %d values, want 2", len(res))
	}
	if err != nil {
		r.sc.failed(err)
		return false, 0, fmt.Errorf("redis %q: %w", r.sc.name, err)
	}
	r.sc.mLatency.Observe(time.Since(start))
	r.sc.succeeded(probe)
	return res[0] == 1, res[1], nil
}
