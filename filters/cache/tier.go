package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-gateway/sluice/engine"
)

// tier is the second tier behind the in-process store: entries shared through Redis, so that a
// fleet fetches an object from the upstream once rather than once per instance. A local miss
// looks there before going upstream (and the entry found is kept locally from then on); what is
// stored locally is written there too, in the background. Entries that vary on request headers
// stay local. Redis trouble is a miss, never an error for the client.
type tier struct {
	client   redis.UniversalClient
	prefix   string
	maxEntry int64
	timeout  time.Duration
	log      *slog.Logger
	// writes bounds the background writes in flight; one that finds them all busy is dropped.
	writes chan struct{}
	// failing is set by a failure and cleared by a success, so an outage is logged once.
	failing atomic.Bool
}

// maxTierWrites is how many writes to Redis may be in flight at once.
const maxTierWrites = 16

func newTier(cfg *Config, rc *engine.RedisConfig, pipeline string, log *slog.Logger) *tier {
	prefix := cfg.StoreKeyPrefix
	if prefix == "" {
		prefix = "sluice:cache:" + pipeline + ":"
	}
	timeout := rc.Timeout.D()
	return &tier{
		client:   rc.NewClient(engine.RedisClientOptions{Timeout: timeout, MaxRetries: -1}),
		prefix:   prefix,
		maxEntry: int64(cfg.StoreMaxEntryBytes),
		timeout:  timeout,
		log:      log.With("redis", rc.Name),
		writes:   make(chan struct{}, maxTierWrites),
	}
}

// key is the Redis key of a URL: a hash, so that a long URL does not make a long key; the URL
// itself is in the value and checked on read.
func (t *tier) key(host, uri []byte) string {
	h := sha256.New()
	h.Write(host)
	h.Write([]byte{0})
	h.Write(uri)
	return t.prefix + hex.EncodeToString(h.Sum(nil))
}

// get returns the entry stored for the URL, or nil.
func (t *tier) get(ctx context.Context, host, uri []byte, now time.Time) *entry {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	b, err := t.client.Get(ctx, t.key(host, uri)).Bytes()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			t.failed(err)
		}
		return nil
	}
	t.ok()
	e, err := decodeEntry(b, host, uri)
	if err != nil {
		t.log.Warn("cache: an entry in Redis could not be read; ignored", "err", err)
		return nil
	}
	return e
}

// put writes e in the background, with Redis' expiry at the end of its usable life (freshness
// plus the stale windows). Entries too big for the tier, or with Vary, are not shared.
func (t *tier) put(host, uri []byte, e *entry, now time.Time) {
	if len(e.vary) > 0 || e.size > t.maxEntry {
		return
	}
	ttl := e.lifetime + max(e.swr, e.sie) - e.age(now)
	if ttl < time.Second {
		return
	}
	select {
	case t.writes <- struct{}{}:
	default:
		return // Redis is slow: the next instance to miss fetches it itself
	}
	key, val := t.key(host, uri), encodeEntry(e, host, uri)
	go func() {
		defer func() { <-t.writes }()
		ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
		defer cancel()
		if err := t.client.Set(ctx, key, val, ttl).Err(); err != nil {
			t.failed(err)
			return
		}
		t.ok()
	}()
}

// drop removes the URL's entry (an unsafe method succeeded on it), in the background.
func (t *tier) drop(host, uri []byte) {
	select {
	case t.writes <- struct{}{}:
	default:
		return
	}
	key := t.key(host, uri)
	go func() {
		defer func() { <-t.writes }()
		ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
		defer cancel()
		if err := t.client.Del(ctx, key).Err(); err != nil {
			t.failed(err)
		}
	}()
}

func (t *tier) failed(err error) {
	if t.failing.CompareAndSwap(false, true) {
		t.log.Warn("cache: the shared Redis tier is unavailable; serving from the local cache and the upstream", "err", err)
	}
}

func (t *tier) ok() {
	if t.failing.CompareAndSwap(true, false) {
		t.log.Info("cache: the shared Redis tier answers again")
	}
}

func (t *tier) close() error {
	for range maxTierWrites { // wait for the writes in flight
		t.writes <- struct{}{}
	}
	return t.client.Close()
}

// tierVersion starts every value, so a format change is a miss, not a misread.
const tierVersion = 1

// encodeEntry writes e (and the URL it is for) as length-prefixed fields. Times travel as Unix
// nanoseconds: instances' clocks are assumed to agree as closely as HTTP caching needs.
func encodeEntry(e *entry, host, uri []byte) []byte {
	b := make([]byte, 0, 64+len(host)+len(uri)+len(e.body)+int(e.size)/4)
	b = append(b, tierVersion)
	bytesField := func(v []byte) { b = binary.AppendUvarint(b, uint64(len(v))); b = append(b, v...) }
	intField := func(v int64) { b = binary.AppendVarint(b, v) }
	bytesField(host)
	bytesField(uri)
	intField(int64(e.status))
	intField(int64(len(e.headers)))
	for _, kv := range e.headers {
		bytesField(kv.k)
		bytesField(kv.v)
	}
	bytesField(e.etag)
	bytesField(e.lastModRaw)
	lastMod := int64(0)
	if !e.lastMod.IsZero() {
		lastMod = e.lastMod.UnixNano()
	}
	intField(lastMod)
	intField(e.stored.UnixNano())
	intField(int64(e.initialAge))
	intField(int64(e.lifetime))
	intField(int64(e.swr))
	intField(int64(e.sie))
	must := int64(0)
	if e.mustReval {
		must = 1
	}
	intField(must)
	bytesField(e.body)
	return b
}

var errBadEntry = errors.New("malformed or foreign cache entry")

func decodeEntry(b []byte, host, uri []byte) (*entry, error) {
	if len(b) == 0 || b[0] != tierVersion {
		return nil, errBadEntry
	}
	b = b[1:]
	bad := false
	bytesField := func() []byte {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			bad = true
			return nil
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v
	}
	intField := func() int64 {
		v, k := binary.Varint(b)
		if k <= 0 {
			bad = true
			return 0
		}
		b = b[k:]
		return v
	}
	if string(bytesField()) != string(host) || string(bytesField()) != string(uri) {
		return nil, errBadEntry // another URL with the same hash, or garbage
	}
	e := &entry{status: int(intField())}
	n := intField()
	if n < 0 || n > 1000 {
		return nil, errBadEntry
	}
	for range n {
		k, v := bytesField(), bytesField()
		e.headers = append(e.headers, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
	}
	e.etag = append([]byte(nil), bytesField()...)
	e.lastModRaw = append([]byte(nil), bytesField()...)
	if lm := intField(); lm != 0 {
		e.lastMod = time.Unix(0, lm)
	}
	e.stored = time.Unix(0, intField())
	e.initialAge = time.Duration(intField())
	e.lifetime = time.Duration(intField())
	e.swr = time.Duration(intField())
	e.sie = time.Duration(intField())
	e.mustReval = intField() == 1
	e.body = append([]byte(nil), bytesField()...)
	if bad || len(b) != 0 {
		return nil, errBadEntry
	}
	if len(e.etag) == 0 {
		e.etag = nil
	}
	if len(e.lastModRaw) == 0 {
		e.lastModRaw = nil
	}
	e.size = entrySize(e)
	return e, nil
}

// entrySize is the memory an entry read from Redis holds, counted as entryFor counts it.
func entrySize(e *entry) int64 {
	size := int64(len(e.body)) + entryOverhead
	for _, h := range e.headers {
		size += int64(len(h.k) + len(h.v) + 32)
	}
	return size
}
