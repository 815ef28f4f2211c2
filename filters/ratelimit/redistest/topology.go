package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a primary, a replica and three Sentinels watching them as MasterName, all on
// loopback and owned by one test.
type Sentinel struct {
	MasterName string
	Primary    *Server
	Replica    *Server
	Addrs      []string // the Sentinels
}

// StartSentinel starts the primary, its replica and three Sentinels, and returns once the
// Sentinels know the replica as ready to take over.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{MasterName: "sluice-test"}
	s.Primary = Start(t)
	host, port, _ := net.SplitHostPort(s.Primary.Addr)
	s.Replica = StartWith(t, Options{Args: []string{"--replicaof", host, port}})
	for range 3 {
		s.Addrs = append(s.Addrs, startSentinelProcess(t, s.Primary.Addr, s.MasterName))
	}
	// Ready: every Sentinel sees the replica linked to the primary, and the others Sentinels.
	waitFor(t, 20*time.Second, "the Sentinels to see the replica and each other", func() bool {
		for _, a := range s.Addrs {
			c := redis.NewSentinelClient(&redis.Options{Addr: a, DisableIdentity: true})
			reps, err := c.Replicas(context.Background(), s.MasterName).Result()
			sen, err2 := c.Sentinels(context.Background(), s.MasterName).Result()
			c.Close()
			if err != nil || err2 != nil || len(reps) != 1 || len(sen) != 2 {
				return false
			}
			if reps[0]["master-link-status"] != "ok" || strings.Contains(reps[0]["flags"], "down") {
				return false
			}
		}
		return true
	})
	return s
}

// Failover makes the Sentinels promote the replica (SENTINEL FAILOVER) and waits until they name
// it the primary; it returns how long that took.
func (s *Sentinel) Failover(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0], DisableIdentity: true})
	defer c.Close()
	if err := c.Failover(context.Background(), s.MasterName).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	waitFor(t, 20*time.Second, "the Sentinels to name the replica the primary", func() bool {
		for _, a := range s.Addrs {
			c := redis.NewSentinelClient(&redis.Options{Addr: a, DisableIdentity: true})
			addr, err := c.GetMasterAddrByName(context.Background(), s.MasterName).Result()
			c.Close()
			if err != nil || net.JoinHostPort(addr[0], addr[1]) != s.Replica.Addr {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

func startSentinelProcess(t testing.TB, primary, name string) string {
	t.Helper()
	bin := binary()
	dir := t.TempDir()
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		host, pport, _ := net.SplitHostPort(primary)
		conf := filepath.Join(dir, "sentinel.conf")
		// down-after 1s and a short failover timeout keep a failover within seconds.
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nsentinel monitor %s %s %s 2\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			port, dir, name, host, pport, name, name, name)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, conf, "--sentinel")
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(10 * time.Second)
		for {
			if ping(addr) {
				return addr
			}
			select {
			case <-exited:
			case <-time.After(10 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
			}
			break
		}
		t.Logf("redis sentinel on %s did not start (trying another port): %s", addr, out.String())
	}
	t.Fatal("could not start a Sentinel")
	return ""
}

// Cluster is a Redis Cluster of three primaries (no replicas) on loopback.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts three cluster-enabled servers, joins them with `redis-cli --cluster create`
// and returns once every node reports cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli is not installed (Debian package redis-tools, a dependency of redis-server)")
	}
	c := &Cluster{}
	var addrs []string
	for range 3 {
		n := StartWith(t, Options{Args: []string{"--cluster-enabled", "yes", "--cluster-node-timeout", "2000", "--cluster-config-file", "nodes.conf"}})
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "cluster_state:ok on every node", func() bool {
		for _, n := range c.Nodes {
			cl := n.Client()
			info, err := cl.ClusterInfo(context.Background()).Result()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	return c
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr)
	}
	return a
}

// Client is a plain client of this one server.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, DisableIdentity: true})
}

// MigrateSlotOf moves the slot of key to another node the way redis-cli --cluster reshard does
// (IMPORTING/MIGRATING, MIGRATE of its keys, SETSLOT NODE), calling during() while the slot is
// half-moved, when clients meet ASK redirects. It returns the node that owns the slot now.
func (c *Cluster) MigrateSlotOf(t testing.TB, key string, during func()) *Server {
	t.Helper()
	ctx := context.Background()
	first := c.Nodes[0].Client()
	defer first.Close()
	slot, err := first.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[*Server]string{}
	var from, to *Server
	for _, n := range c.Nodes {
		cl := n.Client()
		id, err := cl.ClusterMyID(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
		shards, err := cl.ClusterShards(ctx).Result() // Redis 7's successor of CLUSTER SLOTS
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ownsSlot(shards, id, slot) {
			from = n
		}
	}
	if from == nil {
		t.Fatalf("no node owns slot %d", slot)
	}
	for _, n := range c.Nodes {
		if n != from {
			to = n
			break
		}
	}
	fc, tc := from.Client(), to.Client()
	defer fc.Close()
	defer tc.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("migrating slot %d: %v", slot, err)
		}
	}
	must(tc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from]).Err())
	must(fc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to]).Err())
	during()
	host, port, _ := net.SplitHostPort(to.Addr)
	for {
		keys, err := fc.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(fc.Do(ctx, args...).Err())
	}
	for _, n := range []*Server{to, from} {
		cl := n.Client()
		must(cl.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to]).Err())
		cl.Close()
	}
	for _, n := range c.Nodes {
		if n != to && n != from {
			cl := n.Client()
			_ = cl.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to]).Err()
			cl.Close()
		}
	}
	return to
}

// ownsSlot reports whether, in shards (one node's CLUSTER SHARDS), the node id is the primary of
// the shard that serves slot.
func ownsSlot(shards []redis.ClusterShard, id string, slot int64) bool {
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if slot < r.Start || slot > r.End {
				continue
			}
			for _, n := range sh.Nodes {
				if n.Role == "master" {
					return n.ID == id
				}
			}
		}
	}
	return false
}

func waitFor(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
