package cache

import (
	"errors"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "cache"` block.
type Config struct {
	// MaxBytes bounds the memory held by cached responses (bodies, headers and bookkeeping); the
	// least recently used entries are evicted to stay under it.
	MaxBytes engine.Size `hcl:"max_bytes,optional" json:"max_bytes"`
	// DefaultTTL is the freshness given to a cacheable response that states none (no s-maxage,
	// max-age or Expires). 0, the default, caches only responses with explicit freshness.
	DefaultTTL engine.Duration `hcl:"default_ttl,optional" json:"default_ttl"`
	// StatusHeader adds X-Cache: HIT, MISS, STALE or REVALIDATED to GET and HEAD responses.
	StatusHeader bool `hcl:"status_header,optional" json:"status_header"`
	// MaxEntryBytes is the largest single response stored; default max_bytes/8.
	MaxEntryBytes engine.Size `hcl:"max_entry_bytes,optional" json:"max_entry_bytes"`
	// CoalesceTimeout bounds how long a request waits for an identical one already fetching
	// from the upstream before it goes there itself.
	CoalesceTimeout engine.Duration `hcl:"coalesce_timeout,optional" json:"coalesce_timeout"`
	// Store names a redis block (`redis.NAME`) shared by the fleet as a second tier behind this
	// in-process cache (tier.go); empty: in-process only.
	Store engine.RedisRef `hcl:"store,optional" json:"store,omitempty"`
	// StoreKeyPrefix starts the Redis keys; default "sluice:cache:<pipeline>:".
	StoreKeyPrefix string `hcl:"store_key_prefix,optional" json:"store_key_prefix,omitempty"`
	// StoreMaxEntryBytes is the largest entry shared through Redis (larger ones stay local).
	StoreMaxEntryBytes engine.Size `hcl:"store_max_entry_bytes,optional" json:"store_max_entry_bytes"`
}

// SetDefaults fills the defaults: 64MiB, no default TTL, no status header, a 5s coalescing wait.
func (c *Config) SetDefaults() {
	c.MaxBytes = 64 << 20
	c.CoalesceTimeout = engine.Duration(5 * time.Second)
	c.StoreMaxEntryBytes = 1 << 20
}

// Validate checks the sizes and durations.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBytes < 64<<10 {
		errs = append(errs, engine.FieldErr("max_bytes", "must be at least 64KiB"))
	}
	if c.DefaultTTL < 0 {
		errs = append(errs, engine.FieldErr("default_ttl", "must not be negative"))
	}
	if c.MaxEntryBytes < 0 {
		errs = append(errs, engine.FieldErr("max_entry_bytes", "must not be negative"))
	} else if c.MaxEntryBytes > c.MaxBytes && c.MaxBytes >= 64<<10 {
		errs = append(errs, engine.FieldErr("max_entry_bytes", "must not exceed max_bytes"))
	}
	if c.StoreMaxEntryBytes <= 0 || c.StoreMaxEntryBytes > 64<<20 {
		errs = append(errs, engine.FieldErr("store_max_entry_bytes", "must be between 1 byte and 64MiB"))
	}
	if c.CoalesceTimeout <= 0 {
		errs = append(errs, engine.FieldErr("coalesce_timeout", "must be positive"))
	}
	return errors.Join(errs...)
}
