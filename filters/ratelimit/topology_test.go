package ratelimit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/ratelimit/redistest"
)

// topologyFilter builds a filter on a redis block given whole (sentinel or cluster).
func topologyFilter(t testing.TB, cfg *Config, rc *engine.RedisConfig) *Filter {
	t.Helper()
	cfg.Store = "main"
	rc.Name = "main"
	if err := rc.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := build(cfg, &engine.BuildEnv{Pipeline: t.Name(), Logger: quiet, Redis: map[string]*engine.RedisConfig{"main": rc}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.(*Filter).Close() })
	return f.(*Filter)
}

// load sends requests for one key from 8 goroutines until stop is closed, counting statuses.
type load struct {
	admitted, refused, unavailable, other atomic.Int64
	wg                                    sync.WaitGroup
	stop                                  chan struct{}
}

func startLoad(t *testing.T, f *Filter, key string) *load {
	l := &load{stop: make(chan struct{})}
	for range 8 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				switch serve(t, f, nil, "X-Api-Key", key).status {
				case 200:
					l.admitted.Add(1)
				case 429:
					l.refused.Add(1)
				case 503:
					l.unavailable.Add(1)
				default:
					l.other.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

// TestSentinelFailover: a rate limit shared through a Sentinel-managed Redis keeps limiting across
// a forced failover under load, admitting at most one limit's worth more than the limit allows,
// and applies on_store_error while no primary is reachable.
func TestSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	const limit = 200
	cfg := testConfig("header:X-Api-Key", limit, time.Second, 0)
	cfg.OnStoreError = "deny"
	f := topologyFilter(t, cfg, &engine.RedisConfig{Timeout: engine.Duration(100 * time.Millisecond),
		Sentinel: &engine.RedisSentinel{MasterName: s.MasterName, Addrs: s.Addrs}})

	start := time.Now()
	l := startLoad(t, f, "tenant")
	time.Sleep(300 * time.Millisecond) // limiting under load before the failover
	took := s.Failover(t)
	// After the failover the new primary decides: admissions resume.
	before := l.admitted.Load()
	deadline := time.Now().Add(10 * time.Second)
	for l.admitted.Load() < before+limit/2 {
		if time.Now().After(deadline) {
			l.end()
			t.Fatalf("no admissions after the failover: %d admitted, %d refused, %d unavailable", l.admitted.Load(), l.refused.Load(), l.unavailable.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.end()
	elapsed := time.Since(start)
	// GCRA with burst 1 admits at most 1 + limit × elapsed / period.
	allowed := 1 + int64(float64(limit)*elapsed.Seconds())
	over := l.admitted.Load() - allowed
	t.Logf("failover in %v; %v under load: %d admitted (the limit allows %d), %d refused, %d on_store_error deny",
		took, elapsed.Round(time.Millisecond), l.admitted.Load(), allowed, l.refused.Load(), l.unavailable.Load())
	if over > limit {
		t.Errorf("over-admission %d across the failover, more than the limit (%d)", over, limit)
	}
	if l.refused.Load() == 0 || l.other.Load() != 0 {
		t.Errorf("%d refused, %d other answers: the load did not exercise the limit", l.refused.Load(), l.other.Load())
	}

	// No primary at all: on_store_error (deny: 503) decides every request.
	s.Replica.Kill()
	s.Primary.Kill()
	var unavailable int
	for range 20 {
		if serve(t, f, nil, "X-Api-Key", "tenant-2").status == 503 {
			unavailable++
		}
	}
	if unavailable != 20 {
		t.Errorf("with no primary reachable %d of 20 requests got on_store_error's 503", unavailable)
	}
}

// TestClusterStore: decisions on keys spread over a three-primary Redis Cluster (each key's own
// hash slot), and a slot migrated under load: the client follows the ASK and MOVED redirects, no
// decision fails, and the key's budget moves with it.
func TestClusterStore(t *testing.T) {
	c := redistest.StartCluster(t)
	const limit = 100
	cfg := testConfig("header:X-Api-Key", limit, time.Hour, 9) // burst 10, nothing refills in the test
	cfg.OnStoreError = "deny"
	f := topologyFilter(t, cfg, &engine.RedisConfig{Timeout: engine.Duration(time.Second),
		Cluster: &engine.RedisCluster{Addrs: c.Addrs()[:1]}})

	// Many keys: spread over every node.
	for i := range 30 {
		for range 11 {
			serve(t, f, nil, "X-Api-Key", "k"+strconv.Itoa(i))
		}
	}
	for _, n := range c.Nodes {
		cl := n.Client()
		size, err := cl.DBSize(t.Context()).Result()
		cl.Close()
		if err != nil || size == 0 {
			t.Errorf("node %s holds %d keys (%v): keys are not spread", n.Addr, size, err)
		}
	}

	// A key whose slot migrates while it is being decided on.
	key := f.remote.prefix + "h:=moving"
	l := startLoad(t, f, "moving")
	to := c.MigrateSlotOf(t, key, func() { time.Sleep(200 * time.Millisecond) })
	time.Sleep(200 * time.Millisecond) // decisions after the move: MOVED, then the new owner
	l.end()
	t.Logf("slot migration under load: %d admitted, %d refused, %d failed", l.admitted.Load(), l.refused.Load(), l.unavailable.Load())
	if l.unavailable.Load() != 0 || l.other.Load() != 0 {
		t.Errorf("%d decisions failed during the slot migration", l.unavailable.Load()+l.other.Load())
	}
	if l.admitted.Load() != 10 {
		t.Errorf("%d admitted for the migrating key, want exactly the burst of 10", l.admitted.Load())
	}
	cl := to.Client()
	defer cl.Close()
	if n, err := cl.Exists(t.Context(), key).Result(); err != nil || n != 1 {
		t.Errorf("the key is not on the node its slot moved to (%d, %v)", n, err)
	}
}
