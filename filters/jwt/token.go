package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// MaxTokenBytes is the largest token accepted. Larger ones are refused (401) before any decoding,
// so a client cannot make the gateway base64-decode and parse megabytes per request.
const MaxTokenBytes = 8 << 10

// maxKidBytes bounds the "kid" header; real key ids are short.
const maxKidBytes = 256

// Token errors. Each maps to a short, fixed error_description (see reasons); none contains any
// part of the token, so logging them is safe.
var (
	ErrMalformed      = errors.New("malformed token")
	ErrTooLarge       = errors.New("token too large")
	ErrAlgNone        = errors.New(`algorithm "none" is never accepted`)
	ErrAlgUnsupported = errors.New("unsupported algorithm")
	ErrAlgNotAllowed  = errors.New("algorithm not in the allowed list")
	ErrCrit           = errors.New("token header has critical extensions")
	ErrHeader         = errors.New("unsupported token header")
	ErrUnknownKey     = errors.New("no key matches the token's kid")
	ErrKeyMismatch    = errors.New("the token's key does not fit its algorithm")
	ErrSignature      = errors.New("invalid signature")
	ErrNoExpiry       = errors.New("token has no exp claim")
	ErrExpired        = errors.New("token expired")
	ErrNotYetValid    = errors.New("token not yet valid")
	ErrIssuedFuture   = errors.New("token issued in the future")
	ErrClaims         = errors.New("malformed registered claims")
	ErrIssuer         = errors.New("wrong issuer")
	ErrAudience       = errors.New("wrong audience")
)

// b64 decodes base64url without padding and refuses non-canonical encodings (non-zero trailing
// bits), so a token has exactly one byte representation and a cache keyed by the token bytes
// cannot be fooled by an equivalent spelling.
var b64 = base64.RawURLEncoding.Strict()

// Token is a parsed, not yet verified, compact JWS.
type Token struct {
	// Alg is the "alg" header, one of the supported algorithms.
	Alg string
	// Kid is the "kid" header ("" when absent). It is only ever a map key: never a path, a URL
	// or part of a query.
	Kid string
	// SigningInput is "header.payload" as sent, the bytes the signature covers.
	SigningInput []byte
	// Signature is the decoded signature.
	Signature []byte
	// Claims is the decoded payload object.
	Claims map[string]any
}

// Parse decodes a compact JWS strictly. It refuses anything but three base64url segments of the
// exact alphabet (no padding, no whitespace, no line breaks: Go's base64 decoder would otherwise
// skip them), headers and payloads that are not JSON objects, "alg": "none" or an unknown
// algorithm, any "crit" extension (Sluice understands none) and the JWE or unencoded-payload
// headers "zip", "enc" and "b64". The "jwk", "jku", "x5u" and "x5c" headers are accepted but never
// used: keys come only from configuration. Parse checks nothing about the signature or claims.
func Parse(tok []byte) (*Token, error) {
	if len(tok) > MaxTokenBytes {
		return nil, ErrTooLarge
	}
	dot1, dot2 := -1, -1
	for i, c := range tok {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if dot1 < 0 {
				dot1 = i
			} else if dot2 < 0 {
				dot2 = i
			} else {
				return nil, ErrMalformed // more than three segments (a JWE has five)
			}
		default:
			return nil, ErrMalformed
		}
	}
	if dot2 < 0 || dot1 == 0 || dot2 == dot1+1 || dot2 == len(tok)-1 {
		// Fewer than three segments, or an empty one. An empty signature is what "alg": "none"
		// tokens carry; they are refused here or by the header check below, whichever comes first.
		return nil, ErrMalformed
	}
	hdrBytes, err := b64.AppendDecode(nil, tok[:dot1])
	if err != nil {
		return nil, ErrMalformed
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(hdrBytes, &hdr); err != nil || hdr == nil {
		return nil, ErrMalformed
	}
	t := &Token{SigningInput: tok[:dot2]}
	if err := t.readHeader(hdr); err != nil {
		return nil, err
	}
	payload, err := b64.AppendDecode(nil, tok[dot1+1:dot2])
	if err != nil {
		return nil, ErrMalformed
	}
	// Decoding into a map (not a struct) keeps names case-sensitive: encoding/json matches struct
	// fields case-insensitively, so {"EXP": …} would otherwise pass for "exp".
	if err := json.Unmarshal(payload, &t.Claims); err != nil || t.Claims == nil {
		return nil, ErrMalformed
	}
	if t.Signature, err = b64.AppendDecode(nil, tok[dot2+1:]); err != nil {
		return nil, ErrMalformed
	}
	return t, nil
}

func (t *Token) readHeader(hdr map[string]json.RawMessage) error {
	raw, ok := hdr["alg"]
	if !ok {
		return ErrMalformed
	}
	var alg string
	if err := json.Unmarshal(raw, &alg); err != nil {
		return ErrMalformed
	}
	if strings.EqualFold(alg, "none") {
		return ErrAlgNone
	}
	a, ok := algorithms[alg] // case-sensitive: "hs256" is not HS256
	if !ok {
		return ErrAlgUnsupported
	}
	t.Alg = a.name
	if raw, ok := hdr["kid"]; ok {
		if err := json.Unmarshal(raw, &t.Kid); err != nil || len(t.Kid) > maxKidBytes || !printable(t.Kid) {
			return ErrMalformed
		}
	}
	if _, ok := hdr["crit"]; ok {
		return ErrCrit
	}
	for _, name := range []string{"zip", "enc"} {
		if _, ok := hdr[name]; ok {
			return ErrHeader
		}
	}
	if raw, ok := hdr["b64"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("true")) {
		return ErrHeader
	}
	if raw, ok := hdr["typ"]; ok {
		var typ string
		if err := json.Unmarshal(raw, &typ); err != nil {
			return ErrMalformed
		}
	}
	return nil
}

// printable reports whether s holds no control characters.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}
