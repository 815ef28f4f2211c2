package forwardauth

import (
	"crypto/rand"
	"crypto/sha256"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/internal/ttlmap"
)

// decisionKey is SHA-256 of a random 32-byte secret of the filter's followed by the cache_key
// headers' values: the cache holds no credential, nor anything a guess can be checked against
// without the secret. One SHA-256 rather than an HMAC (two, and a state restored from the
// key's for each): the length extension HMAC guards against needs a digest the attacker sees,
// and these never leave the process (RATIONALE.md).
type decisionKey = ttlmap.Key

// allowed is a cached allowing decision: what it puts on the request.
type allowed struct {
	headers  []kv // upstream_headers from the answer, copied
	consumer *engine.Consumer
}

type kv struct{ k, v []byte }

// decisions holds allowing decisions, at most max of them, each for ttl. Refusals are never
// cached: a newly granted client is not held back, and a refusal costs the service a call.
type decisions struct {
	*ttlmap.Map[*allowed]

	secret []byte
}

func newDecisions(max int, ttl int64) *decisions {
	d := &decisions{Map: ttlmap.New[*allowed](max, ttl), secret: make([]byte, 32)}
	_, _ = rand.Read(d.secret) // crypto/rand.Read never fails (it panics first)
	return d
}

// key derives the key of c's request from the values of names; ok is false when none of them
// is present (such a request is never answered from the cache).
func (d *decisions) key(c *engine.Ctx, names []engine.HeaderName, out *decisionKey) (ok bool) {
	// The calls are devirtualised and the digest stays on the stack (TestCachedAllocs): no pool.
	h := sha256.New()
	h.Write(d.secret)
	var n [4]byte
	for _, name := range names {
		v := name.Peek(&c.Request.Header)
		if v != nil {
			ok = true
		}
		// Each value's length goes first: no two lists of values hash the same bytes.
		l := len(v)
		n = [4]byte{byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)}
		if v == nil {
			n[0] = 0xff // absent differs from empty
		}
		h.Write(n[:])
		h.Write(v)
	}
	h.Sum(out[:0])
	return ok
}
