package basicauth

import (
	"crypto/rand"
	"crypto/sha256"
	"sync"

	"github.com/sluice-gateway/sluice/filters/internal/ttlmap"
)

// cacheKey is SHA-256(secret ‖ user ‖ ':' ‖ password) under a random 32-byte secret of the
// filter's: the cache never holds a password, nor anything that can be checked against a guess
// without the secret, which lives only in this process's memory. A user name has no ':', so no
// two (user, password) pairs hash the same bytes. One SHA-256 over the secret and the decoded
// credential, rather than an HMAC (two SHA-256 computations and a state restored from the
// key's for each): a length extension, which HMAC guards against, needs a digest the attacker
// sees, and these never leave the process (RATIONALE.md).
type cacheKey [sha256.Size]byte

// secretLen is the length of the secret; it precedes the credential in scratch.buf.
const secretLen = 32

// keyer hands out scratch space, pooled: a credential of up to maxCredentialBytes is decoded in
// place after the secret, so that its key is one SHA-256 of a contiguous buffer.
type keyer struct{ pool sync.Pool }

// scratch is one request's working memory: the secret, then the decoded credentials.
type scratch struct {
	buf [secretLen + maxCredentialBytes]byte
}

func newKeyer() *keyer {
	var secret [secretLen]byte
	_, _ = rand.Read(secret[:]) // crypto/rand.Read never fails (it panics first)
	k := &keyer{}
	k.pool.New = func() any {
		s := &scratch{}
		copy(s.buf[:], secret[:])
		return s
	}
	return k
}

func (k *keyer) get() *scratch  { return k.pool.Get().(*scratch) }
func (k *keyer) put(s *scratch) { k.pool.Put(s) }

// dec is where the credentials are decoded.
func (s *scratch) dec() []byte { return s.buf[secretLen:] }

// keyOf derives the cache key of the n decoded bytes in dec() ("user:password").
func (s *scratch) keyOf(n int, out *cacheKey) {
	*out = sha256.Sum256(s.buf[:secretLen+n])
}

// key decodes nothing: it derives the cache key of a user and password given apart (tests).
func (s *scratch) key(user, password []byte, out *cacheKey) {
	n := copy(s.dec(), user)
	n += copy(s.dec()[n:], ":")
	n += copy(s.dec()[n:], password)
	s.keyOf(n, out)
}

// credCache holds the credentials bcrypt verified, for cache_ttl, at most cache_size of them.
// Only successes are cached: a wrong password is checked by bcrypt every time.
type credCache = ttlmap.Map[cacheKey, *user]

func newCredCache(max int, ttl int64) *credCache { return ttlmap.New[cacheKey, *user](max, ttl) }
