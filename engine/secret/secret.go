// Package secret recognizes and hides secrets wherever Sluice shows configuration or what a
// client sent: the admin API's /config, diagnostics (and their source snippets), logs.
//
// It works by name (an attribute, map key, header or query parameter called like a secret:
// Name) and by structure (the userinfo of a URL, a credential-looking query parameter, the
// token after "Bearer " or "Basic "). A value is replaced by Marker, never shortened or hashed.
package secret

import (
	"strings"
)

// Marker replaces a hidden value.
const Marker = "[redacted]"

// nameWords are the substrings of a name that mark its value secret: "X-Api-Key", "hmac_secret",
// "access_token", "Authorization", "Proxy-Authorization", "Cookie", "db_password", "sessionid".
var nameWords = []string{"key", "secret", "token", "passw", "pwd", "credential", "auth", "cookie", "session", "signature"}

// queryNames are further query parameter names that carry credentials as a whole word: a shared
// access signature, an OAuth code, short password parameters.
var queryNames = []string{"sig", "code", "pass", "pw"}

// Name reports whether name (case-insensitive) suggests that its value is a secret.
func Name(name string) bool {
	n := strings.ToLower(name)
	for _, w := range nameWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func queryName(name string) bool {
	if Name(name) {
		return true
	}
	n := strings.ToLower(name)
	for _, w := range queryNames {
		if n == w {
			return true
		}
	}
	return false
}

// Text hides the credentials in every URL in s (userinfo, secret query parameters) and the
// token after every "Bearer " or "Basic ". Text without either is returned as it is.
func Text(s string) string {
	if strings.Contains(s, "://") {
		s = urls(s)
	}
	return schemes(s)
}

// urls rewrites every "scheme://authority/path?query" in s.
func urls(s string) string {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		end := i + 3
		for end < len(rest) && !urlEnd(rest[end]) {
			end++
		}
		b.WriteString(rest[:i+3])
		b.WriteString(URL(rest[i+3 : end]))
		rest = rest[end:]
	}
}

// urlEnd reports whether c ends a URL inside text.
func urlEnd(c byte) bool {
	return c <= ' ' || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>' || c == '\\' || c >= 0x7f
}

// URL hides the credentials of a URL or of its part after "scheme://": the userinfo before the
// host ("user:pass@host" → "[redacted]@host") and the values of query parameters named like a
// secret ("?access_token=…" → "?access_token=[redacted]"). It keeps everything else as written.
func URL(u string) string {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
	}
	authEnd := len(u)
	if i := strings.IndexAny(u[start:], "/?#"); i >= 0 {
		authEnd = start + i
	}
	if at := strings.LastIndexByte(u[start:authEnd], '@'); at >= 0 {
		u = u[:start] + Marker + u[start+at:]
	}
	return Query(u)
}

// Query hides the values of the secret-looking parameters of the query in s (after its first
// '?', up to a '#'): "/p?access_token=abc&x=1" → "/p?access_token=[redacted]&x=1".
func Query(s string) string {
	q := strings.IndexByte(s, '?')
	if q < 0 {
		return s
	}
	end := len(s)
	if h := strings.IndexByte(s[q:], '#'); h >= 0 {
		end = q + h
	}
	// Look before splitting: most queries have nothing to hide, and then nothing is allocated
	// (the tracer redacts url.query on every sampled request).
	found := false
	for p := range strings.SplitSeq(s[q+1:end], "&") {
		if k, _, ok := strings.Cut(p, "="); ok && queryName(k) {
			found = true
			break
		}
	}
	if !found {
		return s
	}
	params := strings.Split(s[q+1:end], "&")
	changed := false
	for i, p := range params {
		if k, _, ok := strings.Cut(p, "="); ok && queryName(k) {
			params[i] = k + "=" + Marker
			changed = true
		}
	}
	if !changed {
		return s
	}
	return s[:q+1] + strings.Join(params, "&") + s[end:]
}

// schemes hides the credential after an HTTP authentication scheme that carries one in clear
// ("Bearer abc.def" → "Bearer [redacted]", also "Basic").
func schemes(s string) string {
	lower := asciiLower(s) // same length as s, unlike strings.ToLower on invalid UTF-8
	if !strings.Contains(lower, "bearer ") && !strings.Contains(lower, "basic ") {
		return s
	}
	var b strings.Builder
	i := 0
	for i < len(s) {
		n := schemeAt(lower, i)
		if n == 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		j := i + n
		for j < len(s) && s[j] == ' ' {
			j++
		}
		k := j
		for k < len(s) && token68(s[k]) {
			k++
		}
		if k-j >= 8 { // a credential, not a word of prose ("basic usage")
			b.WriteString(s[i+n : j])
			b.WriteString(Marker)
		} else {
			b.WriteString(s[i+n : k])
		}
		i = k
	}
	return b.String()
}

// schemeAt returns the length of "bearer " or "basic " at lower[i:] when it starts a word, else 0.
func schemeAt(lower string, i int) int {
	if i > 0 {
		if c := lower[i-1]; c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			return 0
		}
	}
	for _, w := range []string{"bearer ", "basic "} {
		if strings.HasPrefix(lower[i:], w) {
			return len(w)
		}
	}
	return 0
}

// token68 reports whether c may appear in a token68 credential (RFC 9110 §11.2).
func token68(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0
}

// asciiLower lower-cases the ASCII letters of s and keeps every other byte.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
