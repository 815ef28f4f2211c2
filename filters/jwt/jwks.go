package jwt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

const (
	// maxJWKSBytes bounds a JWKS response body.
	maxJWKSBytes = 1 << 20
	// fetchTimeout bounds one JWKS fetch, connect to last byte.
	fetchTimeout = 10 * time.Second
	// defaultCooldown is the least time between two fetches caused by unknown kids (or by requests
	// arriving before the first fetch succeeded), so a flood of random kids costs one fetch.
	defaultCooldown = 30 * time.Second
	// defaultRetry is how soon the background loop tries again after a failed fetch.
	defaultRetry = 10 * time.Second
)

var jwksFetches = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_jwt_jwks_fetches_total",
	Help: "JWKS fetches by the jwt filter, by result (ok, error).",
}, []string{"result"})

var (
	jwksFetchOK  = jwksFetches.WithLabelValues("ok")
	jwksFetchErr = jwksFetches.WithLabelValues("error")
)

// remoteKeys keeps a JWKS fetched from a URL: refreshed in the background every `every`, refetched
// on demand (at most once per cooldown) when a token names an unknown kid, and kept as it was
// while fetches fail.
type remoteKeys struct {
	url      string
	client   *http.Client
	every    time.Duration
	retry    time.Duration
	cooldown time.Duration
	log      *slog.Logger

	set      atomic.Pointer[keySet] // nil until the first fetch succeeds
	lastErr  atomic.Pointer[error]  // the last fetch failure, nil after a success
	attempts atomic.Int64           // fetches attempted, for tests

	// fetchMu serializes fetches; lastAttempt and lastBody are guarded by it.
	fetchMu     sync.Mutex
	lastAttempt time.Time
	lastBody    []byte

	ctx    context.Context // canceled by close: stops the loop and any fetch in flight
	cancel context.CancelFunc
	done   chan struct{}

	// refs counts the filters using a shared fetcher (guarded by shared.mu); key is its entry.
	refs int
	key  sharedKey
}

// Running gateways share one fetcher per (URL, refresh period): pipelines naming the same JWKS
// fetch it once, and a hot reload hands the old configuration's keys to the new one (built
// before the old is closed), so a reload while the identity provider is down keeps serving
// the keys it had instead of turning into 503s.
type sharedKey struct {
	url   string
	every time.Duration
}

var shared = struct {
	mu sync.Mutex
	m  map[sharedKey]*remoteKeys
}{m: map[sharedKey]*remoteKeys{}}

// acquireRemoteKeys returns the running fetcher for url and every, starting one if needed; tune
// adjusts a new one before it starts. Each call must be paired with release.
func acquireRemoteKeys(url string, every time.Duration, log *slog.Logger, tune func(*remoteKeys)) *remoteKeys {
	k := sharedKey{url, every}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	r := shared.m[k]
	if r == nil {
		r = newRemoteKeys(url, every, log)
		tune(r)
		r.key = k
		shared.m[k] = r
		r.start()
	}
	r.refs++
	return r
}

// release drops one reference to a shared fetcher and stops it after the last.
func (r *remoteKeys) release() {
	shared.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(shared.m, r.key)
	}
	shared.mu.Unlock()
	if last {
		r.close()
	}
}

func newRemoteKeys(url string, every time.Duration, log *slog.Logger) *remoteKeys {
	ctx, cancel := context.WithCancel(context.Background())
	return &remoteKeys{
		url:      url,
		client:   &http.Client{Timeout: fetchTimeout},
		every:    every,
		retry:    min(every, defaultRetry),
		cooldown: min(every, defaultCooldown),
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
	}
}

// start launches the refresh loop: a first fetch at once, then one every `every` (every `retry`
// while fetches fail).
func (r *remoteKeys) start() {
	r.done = make(chan struct{})
	go r.loop()
}

func (r *remoteKeys) loop() {
	defer close(r.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.fetchMu.Lock()
		err := r.fetchLocked()
		r.fetchMu.Unlock()
		if err != nil {
			t.Reset(r.retry)
		} else {
			t.Reset(r.every)
		}
	}
}

// close stops the loop and waits for it.
func (r *remoteKeys) close() {
	r.cancel()
	if r.done != nil {
		<-r.done
	}
}

// current returns the key set, nil if none was ever fetched.
func (r *remoteKeys) current() *keySet { return r.set.Load() }

// refetch fetches again unless a fetch was attempted within the cooldown, and returns the
// (possibly new) set. Concurrent callers wait for the one fetch in flight rather than start their
// own.
func (r *remoteKeys) refetch() *keySet {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if time.Since(r.lastAttempt) >= r.cooldown {
		_ = r.fetchLocked()
	}
	return r.set.Load()
}

// unavailable explains why no key set is loaded, for logs.
func (r *remoteKeys) unavailable() error {
	if p := r.lastErr.Load(); p != nil {
		return fmt.Errorf("signing keys never fetched from %s: %w", r.url, *p)
	}
	return fmt.Errorf("signing keys not fetched yet from %s", r.url)
}

// fetchLocked fetches and installs the JWKS; fetchMu must be held. A failure keeps the old set.
func (r *remoteKeys) fetchLocked() error {
	r.lastAttempt = time.Now()
	r.attempts.Add(1)
	body, err := r.get()
	if err == nil && r.set.Load() != nil && bytes.Equal(body, r.lastBody) {
		// Unchanged: keep the same set so cached tokens stay valid.
		r.lastErr.Store(nil)
		jwksFetchOK.Inc()
		return nil
	}
	var set *keySet
	if err == nil {
		var skipped []error
		set, skipped, err = parseJWKS(body)
		for _, s := range skipped {
			r.log.Warn("jwks: skipping key", "url", r.url, "err", s)
		}
	}
	if err != nil {
		jwksFetchErr.Inc()
		if errors.Is(err, context.Canceled) && r.ctx.Err() != nil {
			return err // closing
		}
		r.lastErr.Store(&err)
		if r.set.Load() == nil {
			r.log.Error("jwks: fetch failed and no keys were ever loaded: requests get 503", "url", r.url, "err", err)
		} else {
			r.log.Warn("jwks: refresh failed: serving the previous keys", "url", r.url, "err", err)
		}
		return err
	}
	jwksFetchOK.Inc()
	r.lastBody = body
	r.lastErr.Store(nil)
	r.set.Store(set)
	r.log.Debug("jwks: keys loaded", "url", r.url, "keys", len(set.all))
	return nil
}

func (r *remoteKeys) get() ([]byte, error) {
	ctx, cancel := context.WithTimeout(r.ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("building JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	return body, nil
}
