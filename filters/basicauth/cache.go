package basicauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"fmt"

	"github.com/sluice-gateway/sluice/filters/internal/ttlmap"
)

// cacheKey is SHA-256(secret ‖ token): a random 64-byte secret of the filter's followed by the
// credential as the client sent it, the base64 text after "Basic ". The cache never holds a
// password, nor anything that can be checked against a guess without the secret. Keying the
// text rather than the decoded user and password spares a cached request the decoding: a hit
// means these very bytes were verified before (two texts that decode alike, say with other
// padding bits, are two entries, each verified by bcrypt), and the entry holds the user. One
// SHA-256 rather than an HMAC: a length extension, which HMAC guards against, needs a digest
// the attacker sees, and these never leave the process (RATIONALE.md).
type cacheKey = ttlmap.Key

// secretLen is the length of the secret: one SHA-256 block, compressed once when the filter is
// built, so that a request hashes only its token (one block up to 55 bytes of base64).
const secretLen = 64

// keyer derives cache keys. It holds SHA-256's state after the secret's block (its chaining
// value, as MarshalBinary writes it), not the secret itself.
type keyer struct{ state []byte }

func newKeyer() *keyer {
	var secret [secretLen]byte
	_, _ = rand.Read(secret[:]) // crypto/rand.Read never fails (it panics first)
	h := sha256.New()
	h.Write(secret[:])
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("basic_auth: saving SHA-256's state: %v", err))
	}
	clear(secret[:])
	k := &keyer{state: state}
	var probe cacheKey
	k.key(nil, &probe) // panics now, not on a request, if the state does not restore
	return k
}

// key sets out to the cache key of token.
func (k *keyer) key(token []byte, out *cacheKey) {
	// The calls are devirtualised and the digest stays on the stack (TestCachedAllocs).
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(k.state); err != nil {
		// Never hash without the secret: a key of the token alone could be checked against guesses.
		panic(fmt.Sprintf("basic_auth: restoring SHA-256's state: %v", err))
	}
	h.Write(token)
	h.Sum(out[:0])
}

// credCache holds the credentials bcrypt verified, for cache_ttl, at most cache_size of them.
// Only successes are cached: a wrong password is checked by bcrypt every time.
type credCache = ttlmap.Map[*user]

func newCredCache(max int, ttl int64) *credCache { return ttlmap.New[*user](max, ttl) }
