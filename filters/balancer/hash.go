package balancer

import (
	"fmt"
	"strings"

	"github.com/sluice-gateway/sluice/engine"
)

// hashSource is what a hashing policy hashes a request on (hash_on).
type hashSource struct {
	kind   hashKind
	name   string            // header, cookie or claim name
	header engine.HeaderName // kind hashHeader: name, normalised once
}

type hashKind uint8

const (
	hashNone hashKind = iota
	hashIP
	hashHeader
	hashCookie
	hashClaim
	hashPath
)

func parseHashOn(s string) (hashSource, error) {
	if s == "" {
		return hashSource{}, nil
	}
	switch s {
	case "ip":
		return hashSource{kind: hashIP}, nil
	case "path":
		return hashSource{kind: hashPath}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if ok && name != "" {
		switch kind {
		case "header":
			return hashSource{kind: hashHeader, name: name, header: engine.NewHeaderName(name)}, nil
		case "cookie":
			return hashSource{kind: hashCookie, name: name}, nil
		case "claim":
			return hashSource{kind: hashClaim, name: name}, nil
		}
	}
	return hashSource{}, fmt.Errorf("invalid hash_on %q: use ip, path, header:NAME, cookie:NAME or claim:NAME", s)
}

// key hashes the request's key. ok is false when the request has none (no such header, cookie
// or claim): the policy then picks at random.
func (h hashSource) key(c *engine.Ctx) (uint64, bool) {
	switch h.kind {
	case hashIP:
		if !c.ClientAddr.IsValid() {
			return 0, false
		}
		a := c.ClientAddr.As16()
		return hashBytes(a[:]), true
	case hashPath:
		return hashBytes(c.Path), true
	case hashHeader:
		if v := h.header.Peek(&c.Request.Header); len(v) > 0 {
			return hashBytes(v), true
		}
	case hashCookie:
		if v := c.Request.Header.Cookie(h.name); len(v) > 0 {
			return hashBytes(v), true
		}
	case hashClaim:
		claims, ok := engine.ClaimsKey.Get(c)
		if !ok {
			return 0, false
		}
		if v, ok := claims.String(h.name, ","); ok && v != "" {
			return hashString(v), true
		}
	}
	return 0, false
}

// hashString is hashBytes for a string, without converting it.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}
