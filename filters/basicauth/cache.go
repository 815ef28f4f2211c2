package basicauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"sync"
)

// cacheKey is HMAC-SHA-256(key, user NUL password) under a random key of the filter's: the cache
// never holds a password, nor anything that can be checked against a guess without the key,
// which lives only in this process's memory.
type cacheKey [sha256.Size]byte

// keyer computes cache keys; its scratch space is pooled (an HMAC allocates when made, not when
// reset).
type keyer struct{ pool sync.Pool }

// scratch is one request's working memory: the HMAC, its output, the decoded credentials.
type scratch struct {
	h   hash.Hash
	sum []byte
	dec [maxCredentialBytes]byte
}

func newKeyer() *keyer {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // crypto/rand.Read never fails (it panics first)
	k := &keyer{}
	k.pool.New = func() any {
		return &scratch{h: hmac.New(sha256.New, secret), sum: make([]byte, 0, sha256.Size+2)}
	}
	return k
}

func (k *keyer) get() *scratch  { return k.pool.Get().(*scratch) }
func (k *keyer) put(s *scratch) { k.pool.Put(s) }

// key derives the cache key of a credential. The user name's length goes first, so that no two
// (user, password) pairs hash the same bytes.
func (s *scratch) key(user, password []byte, out *cacheKey) {
	s.h.Reset()
	s.sum = append(s.sum[:0], byte(len(user)>>8), byte(len(user)))
	s.h.Write(s.sum)
	s.h.Write(user)
	s.h.Write(password)
	s.sum = s.h.Sum(s.sum[:0])
	copy(out[:], s.sum)
}

// credCache holds the credentials bcrypt verified, for ttl, at most max of them. Only successes
// are cached: a wrong password is checked by bcrypt every time.
type credCache struct {
	mu  sync.RWMutex
	m   map[cacheKey]cached
	max int
	ttl int64 // nanoseconds
}

type cached struct {
	u       *user
	expires int64 // unix nanoseconds
}

func newCredCache(max int, ttl int64) *credCache {
	return &credCache{m: make(map[cacheKey]cached, min(max, 1024)), max: max, ttl: ttl}
}

// get returns the user whose credential k is, if it was verified less than ttl ago.
func (c *credCache) get(k *cacheKey, now int64) *user {
	c.mu.RLock()
	e, ok := c.m[*k]
	c.mu.RUnlock()
	if !ok || now >= e.expires {
		return nil
	}
	return e.u
}

// put records a verified credential. When the cache is full, expired entries go first, else
// an arbitrary one (Go's map iteration starts at a random place).
func (c *credCache) put(k *cacheKey, u *user, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[*k]; !ok && len(c.m) >= c.max {
		evicted := 0
		for key, e := range c.m {
			if now >= e.expires {
				delete(c.m, key)
				evicted++
			}
		}
		if evicted == 0 {
			for key := range c.m {
				delete(c.m, key)
				break
			}
		}
	}
	c.m[*k] = cached{u: u, expires: now + c.ttl}
}

// len is the number of entries, for tests.
func (c *credCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
