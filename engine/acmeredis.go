package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// redisStorage is certmagic's Storage in Redis (acme { storage = "redis" }), for a fleet without
// a shared directory. Keys are certmagic's slash-separated paths under the prefix "sluice:acme:":
//   - a file is a hash "…:f:KEY" with its value (v) and modification time (m, Unix ns);
//   - a directory is a set "…:d:DIR" of its children's names, kept by Store and Delete, so that
//     List and Exists never scan the keyspace (the same Redis may hold rate-limit keys);
//   - a lock is a string "…:l:NAME" holding its owner's random token, with an expiry that the
//     owner renews while it holds it: a holder that dies releases it after redisLockTTL.
type redisStorage struct {
	client *redis.Client
	where  string // the block's servers, for logs
	prefix string

	mu    sync.Mutex
	locks map[string]*redisLock // held by this process
}

type redisLock struct {
	token string
	stop  chan struct{}
	done  chan struct{}
}

// redisLockTTL is how long a lock outlives its holder; the holder renews it every third of it.
var redisLockTTL = 30 * time.Second

// redisStorageTimeout bounds every Redis command of the storage (the redis block's timeout is
// for request paths and much shorter).
const redisStorageTimeout = 5 * time.Second

func newRedisStorage(rc *RedisConfig) *redisStorage {
	return &redisStorage{
		// A sentinel block gives a failover client, a *redis.Client too.
		client: rc.NewClient(RedisClientOptions{Timeout: redisStorageTimeout, PoolSize: 4}).(*redis.Client),
		where:  rc.Where(),
		prefix: "sluice:acme:",
		locks:  map[string]*redisLock{},
	}
}

func (s *redisStorage) file(key string) string { return s.prefix + "f:" + key }
func (s *redisStorage) dir(key string) string  { return s.prefix + "d:" + key }
func (s *redisStorage) lock(key string) string { return s.prefix + "l:" + key }

// String names the storage in certmagic's logs.
func (s *redisStorage) String() string { return "redis:" + s.where }

// Store writes value at key and records key in its parent directories, in one transaction.
func (s *redisStorage) Store(ctx context.Context, key string, value []byte) error {
	key = cleanKey(key)
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.file(key), "v", value, "m", strconv.FormatInt(time.Now().UnixNano(), 10))
		for k := key; k != "" && k != "."; k = path.Dir(k) {
			parent := path.Dir(k)
			if parent == "." {
				parent = ""
			}
			p.SAdd(ctx, s.dir(parent), path.Base(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis storage: storing %s: %w", key, err)
	}
	return nil
}

func (s *redisStorage) Load(ctx context.Context, key string) ([]byte, error) {
	key = cleanKey(key)
	v, err := s.client.HGet(ctx, s.file(key), "v").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("redis storage: loading %s: %w", key, err)
	}
	return v, nil
}

// Delete removes a file, or a directory and everything under it, and prunes the directories it
// leaves empty.
func (s *redisStorage) Delete(ctx context.Context, key string) error {
	key = cleanKey(key)
	children, err := s.client.SMembers(ctx, s.dir(key)).Result()
	if err != nil {
		return fmt.Errorf("redis storage: deleting %s: %w", key, err)
	}
	for _, c := range children {
		if err := s.Delete(ctx, path.Join(key, c)); err != nil {
			return err
		}
	}
	if err := s.client.Del(ctx, s.file(key), s.dir(key)).Err(); err != nil {
		return fmt.Errorf("redis storage: deleting %s: %w", key, err)
	}
	for k := key; k != "" && k != "."; k = path.Dir(k) {
		parent := path.Dir(k)
		if parent == "." {
			parent = ""
		}
		if n, err := s.client.Exists(ctx, s.file(k), s.dir(k)).Result(); err != nil || n > 0 {
			return nil // still holds something (or cannot tell): keep the entry
		}
		if err := s.client.SRem(ctx, s.dir(parent), path.Base(k)).Err(); err != nil {
			return fmt.Errorf("redis storage: deleting %s: %w", key, err)
		}
	}
	return nil
}

func (s *redisStorage) Exists(ctx context.Context, key string) bool {
	key = cleanKey(key)
	n, err := s.client.Exists(ctx, s.file(key), s.dir(key)).Result()
	return err == nil && n > 0
}

// List returns the keys in the directory at dir (with recursive, the keys under it at any depth,
// directories included, as certmagic's file storage does).
func (s *redisStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = cleanKey(dir)
	children, err := s.client.SMembers(ctx, s.dir(dir)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis storage: listing %s: %w", dir, err)
	}
	if len(children) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, fs.ErrNotExist)
	}
	var out []string
	for _, c := range children {
		k := path.Join(dir, c)
		out = append(out, k)
		if recursive {
			sub, err := s.List(ctx, k, true)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			out = append(out, sub...)
		}
	}
	return out, nil
}

func (s *redisStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = cleanKey(key)
	h, err := s.client.HGetAll(ctx, s.file(key)).Result()
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("redis storage: %s: %w", key, err)
	}
	if v, ok := h["v"]; ok {
		ns, _ := strconv.ParseInt(h["m"], 10, 64)
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, ns), Size: int64(len(v)), IsTerminal: true}, nil
	}
	if n, err := s.client.Exists(ctx, s.dir(key)).Result(); err == nil && n > 0 {
		return certmagic.KeyInfo{Key: key}, nil
	}
	return certmagic.KeyInfo{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
}

// Lock takes the named lock, waiting while another holder (this or another instance) has it.
func (s *redisStorage) Lock(ctx context.Context, name string) error {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	for {
		ok, err := s.client.SetNX(ctx, s.lock(name), token, redisLockTTL).Result()
		if err != nil {
			return fmt.Errorf("redis storage: locking %s: %w", name, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	l := &redisLock{token: token, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.locks[name] = l
	s.mu.Unlock()
	go s.keep(name, l)
	return nil
}

// keep renews a held lock until Unlock.
func (s *redisStorage) keep(name string, l *redisLock) {
	defer close(l.done)
	t := time.NewTicker(redisLockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), redisStorageTimeout)
			_ = renewLock.Run(ctx, s.client, []string{s.lock(name)}, l.token, redisLockTTL.Milliseconds()).Err()
			cancel()
		}
	}
}

// Unlock releases a lock this process holds; a lock that expired and was taken by another
// holder meanwhile is left alone.
func (s *redisStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("redis storage: unlocking %s: not held", name)
	}
	close(l.stop)
	<-l.done
	if err := releaseLock.Run(ctx, s.client, []string{s.lock(name)}, l.token).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis storage: unlocking %s: %w", name, err)
	}
	return nil
}

// Close closes the client (the manager's shutdown).
func (s *redisStorage) Close() error { return s.client.Close() }

// The lock scripts act only while the lock holds the caller's token.
var (
	renewLock   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseLock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// cleanKey is a key without leading or trailing slashes ("" is the root).
func cleanKey(k string) string {
	k = strings.Trim(path.Clean("/"+k), "/")
	return k
}
