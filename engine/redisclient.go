package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisSentinel is a redis block's `sentinel` block: the Redis is the primary that these Sentinels
// name master_name, followed across failovers.
type RedisSentinel struct {
	MasterName string   `hcl:"master_name" json:"master_name"`
	Addrs      []string `hcl:"addrs" json:"addrs"`
	// Username and Password are the Sentinels' own (sentinel requirepass); the redis block's
	// password is the primary's.
	Username string `hcl:"username,optional" json:"username"`
	Password string `hcl:"password,optional" json:"password" sluice:"secret"`
}

// RedisCluster is a redis block's `cluster` block: a Redis Cluster reached through any of addrs
// (seeds; the client learns the slots and follows MOVED/ASK redirects while they migrate).
type RedisCluster struct {
	Addrs []string `hcl:"addrs" json:"addrs"`
	// MaxRedirects bounds the MOVED/ASK redirects one command follows.
	MaxRedirects int `hcl:"max_redirects,optional" json:"max_redirects"`
}

// validateTopology checks that a redis block names exactly one of address, sentinel and cluster.
func (r *RedisConfig) validateTopology() []error {
	n := 0
	for _, set := range []bool{r.Address != "", r.Sentinel != nil, r.Cluster != nil} {
		if set {
			n++
		}
	}
	var errs []error
	switch {
	case n == 0:
		errs = append(errs, FieldErr("address", "must not be empty (or give a sentinel or cluster block)"))
	case n > 1:
		errs = append(errs, FieldErr("address", "give one of address, sentinel and cluster"))
	}
	if s := r.Sentinel; s != nil {
		if s.MasterName == "" {
			errs = append(errs, FieldErr("sentinel.master_name", "must not be empty"))
		}
		if len(s.Addrs) == 0 {
			errs = append(errs, FieldErr("sentinel.addrs", "name at least one Sentinel"))
		}
	}
	if c := r.Cluster; c != nil {
		if len(c.Addrs) == 0 {
			errs = append(errs, FieldErr("cluster.addrs", "name at least one node of the cluster"))
		}
		if r.DB != 0 {
			errs = append(errs, FieldErr("db", "a Redis Cluster has database 0 only"))
		}
		if c.MaxRedirects < 0 {
			errs = append(errs, FieldErr("cluster.max_redirects", "must not be negative"))
		}
	}
	return errs
}

// RedisClientOptions are the waits and pool a user of a redis block chooses for its client.
type RedisClientOptions struct {
	// Timeout bounds dialing, waiting for a pooled connection, writing and reading.
	Timeout time.Duration
	// MaxRetries as go-redis counts it (-1: none).
	MaxRetries int
	PoolSize   int // 0: go-redis' default
}

// NewClient makes the go-redis client for the block: a plain client, a failover client that asks
// the Sentinels for the primary (and again after each failover), or a cluster client. It dials
// lazily.
func (r *RedisConfig) NewClient(o RedisClientOptions) redis.UniversalClient {
	quietRedisOnce.Do(func() { redis.SetLogger(redisLogger{}) })
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch {
	case r.Sentinel != nil:
		s := r.Sentinel
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: s.MasterName, SentinelAddrs: s.Addrs,
			SentinelUsername: s.Username, SentinelPassword: s.Password,
			Password: r.Password, DB: r.DB,
			DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout, PoolTimeout: o.Timeout,
			ContextTimeoutEnabled: true, MaxRetries: o.MaxRetries, PoolSize: o.PoolSize,
			DisableIdentity: true,
		})
	case r.Cluster != nil:
		redirects := r.Cluster.MaxRedirects
		if redirects == 0 {
			redirects = 3
		}
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: r.Cluster.Addrs, Password: r.Password, MaxRedirects: redirects,
			DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout, PoolTimeout: o.Timeout,
			ContextTimeoutEnabled: true, MaxRetries: o.MaxRetries, PoolSize: o.PoolSize,
			DisableIdentity: true, MaintNotificationsConfig: maint,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr: r.Address, Password: r.Password, DB: r.DB,
		DialTimeout: o.Timeout, DialerRetries: 1, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout, PoolTimeout: o.Timeout,
		ContextTimeoutEnabled: true, MaxRetries: o.MaxRetries, PoolSize: o.PoolSize,
		DisableIdentity: true, MaintNotificationsConfig: maint,
	})
}

// Where names the block's servers for logs: the address, the Sentinels' master or the cluster.
func (r *RedisConfig) Where() string {
	switch {
	case r.Sentinel != nil:
		return fmt.Sprintf("sentinel master %s via %v", r.Sentinel.MasterName, r.Sentinel.Addrs)
	case r.Cluster != nil:
		return fmt.Sprintf("cluster via %v", r.Cluster.Addrs)
	}
	return r.Address
}

var quietRedisOnce sync.Once

// redisLogger sends go-redis' own log lines (a failed dial on every probe, say) to debug level:
// the users of a client report outages once, themselves.
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	slog.Debug(fmt.Sprintf(format, v...), "component", "go-redis")
}

var errRedisCluster = errors.New("needs a single Redis or a Sentinel-managed one: its storage uses transactions across keys, which a Redis Cluster refuses")
