package engine

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/ratelimit/redistest"
)

// TestRedisStorage checks the Redis storage against certmagic's Storage contract, on a real
// redis-server: files, implicit directories, listing, deleting with pruning, and the lock.
func TestRedisStorage(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedisStorage(&RedisConfig{Name: "r", Address: srv.Addr})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	if _, err := s.Load(ctx, "certificates/ca/example.com/example.com.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("loading a missing key: %v, want fs.ErrNotExist", err)
	}
	for k, v := range map[string]string{
		"certificates/ca/example.com/example.com.crt": "CERT",
		"certificates/ca/example.com/example.com.key": "KEY",
		"certificates/ca/www.example.com/www.crt":     "CERT2",
		"last_clean.json": "{}",
	} {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.Load(ctx, "/certificates/ca/example.com/example.com.key"); err != nil || string(v) != "KEY" {
		t.Fatalf("load: %q %v", v, err)
	}
	for _, k := range []string{"certificates", "certificates/ca", "certificates/ca/example.com/example.com.crt", "last_clean.json"} {
		if !s.Exists(ctx, k) {
			t.Errorf("%s does not exist", k)
		}
	}
	if s.Exists(ctx, "certificates/c") {
		t.Error("a prefix that is no path component exists")
	}
	got, err := s.List(ctx, "certificates/ca", false)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"certificates/ca/example.com", "certificates/ca/www.example.com"}) {
		t.Errorf("list: %v %v", got, err)
	}
	got, _ = s.List(ctx, "certificates", true)
	if len(got) != 6 { // ca, two folders, three files
		t.Errorf("recursive list: %v", got)
	}
	if _, err := s.List(ctx, "nothing", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("listing a missing folder: %v", err)
	}
	info, err := s.Stat(ctx, "certificates/ca/example.com/example.com.crt")
	if err != nil || !info.IsTerminal || info.Size != 4 || time.Since(info.Modified) > time.Minute {
		t.Errorf("stat of a file: %+v %v", info, err)
	}
	if info, err := s.Stat(ctx, "certificates/ca"); err != nil || info.IsTerminal {
		t.Errorf("stat of a folder: %+v %v", info, err)
	}
	if err := s.Delete(ctx, "certificates/ca/example.com"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/example.com/example.com.key") || s.Exists(ctx, "certificates/ca/example.com") {
		t.Error("a deleted folder or its file still exists")
	}
	if err := s.Delete(ctx, "certificates/ca/www.example.com/www.crt"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates") {
		t.Error("folders left empty by a delete are still listed")
	}
	if err := s.Delete(ctx, "never/stored"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}

	// The lock: a second holder (another instance) waits until the first unlocks.
	other := newRedisStorage(&RedisConfig{Name: "r", Address: srv.Addr})
	t.Cleanup(func() { _ = other.Close() })
	if err := s.Lock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err = other.Lock(short, "issue_cert_example.com")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second holder got a held lock: %v", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = s.Unlock(ctx, "issue_cert_example.com")
	}()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := other.Lock(wait, "issue_cert_example.com"); err != nil {
		t.Fatalf("the lock was not passed on after Unlock: %v", err)
	}
	if err := other.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
}

// TestRedisLockExpires: a holder that stops renewing (it died) loses the lock after the TTL.
func TestRedisLockExpires(t *testing.T) {
	defer func(d time.Duration) { redisLockTTL = d }(redisLockTTL)
	redisLockTTL = time.Second
	srv := redistest.Start(t)
	ctx := context.Background()
	dead := newRedisStorage(&RedisConfig{Name: "r", Address: srv.Addr})
	if err := dead.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	// The holder dies: its renewals stop, its lock stays in Redis.
	dead.mu.Lock()
	close(dead.locks["x"].stop)
	dead.mu.Unlock()
	_ = dead.Close()
	live := newRedisStorage(&RedisConfig{Name: "r", Address: srv.Addr})
	t.Cleanup(func() { _ = live.Close() })
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := live.Lock(wait, "x"); err != nil {
		t.Fatalf("a dead holder's lock did not expire: %v", err)
	}
	if time.Since(start) < 500*time.Millisecond {
		t.Errorf("the lock was taken after %v, before the dead holder's TTL", time.Since(start))
	}
	_ = live.Unlock(ctx, "x")
}
