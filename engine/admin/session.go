package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// The dashboard's browser session. With an admin token, the login form takes the token once and
// sets a cookie that holds an expiry and an HMAC over it, never the token: the HMAC key is random
// per process and the token is part of the MAC input, so a restart or a new token ends every
// session. State-changing calls made with the cookie also need the CSRF token GET
// /api/v1/session returns (an HMAC of the session value), sent in the X-CSRF-Token header: a
// page of another origin can neither read it nor send that header without a CORS preflight the
// admin API never grants.

const (
	sessionCookie   = "sluice_admin"
	sessionLifetime = 12 * time.Hour
	csrfHeader      = "X-CSRF-Token"
)

// authKind is how a request proved it may use the admin API.
type authKind int

const (
	authNone   authKind = iota // no token configured: loopback is the protection
	authBearer                 // Authorization: Bearer <token>
	authCookie                 // the dashboard's session cookie
	authFailed
)

func newKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("admin: no randomness for the session key: " + err.Error())
	}
	return k
}

func (s *Server) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	m.Write(*s.token.Load())
	return hex.EncodeToString(m.Sum(nil))
}

// newSession returns a session cookie value valid until exp.
func (s *Server) newSession(exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + s.mac("session", e)
}

// validSession reports whether v is a session value this process issued for the current token
// and it has not expired.
func (s *Server) validSession(v []byte) bool {
	e, sig, ok := strings.Cut(string(v), ".")
	if !ok {
		return false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || time.Now().Unix() > exp {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(s.mac("session", e)))
}

// csrfToken is what state-changing calls of the session (or, without a token, of the page)
// send back in X-CSRF-Token.
func (s *Server) csrfToken(c *fasthttp.RequestCtx, how authKind) string {
	if how == authCookie {
		return s.mac("csrf", string(c.Request.Header.Cookie(sessionCookie)))
	}
	return s.mac("csrf", "no-session")
}

// authenticate tells how c is allowed in. cookieOK says whether the session cookie counts (the
// dashboard's routes; the original admin endpoints take the bearer token only).
func (s *Server) authenticate(c *fasthttp.RequestCtx, cookieOK bool) authKind {
	token := *s.token.Load()
	if len(token) == 0 {
		return authNone
	}
	auth := c.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(auth) > len(prefix) && string(auth[:len(prefix)]) == prefix {
		if subtle.ConstantTimeCompare(auth[len(prefix):], token) == 1 {
			return authBearer
		}
		return authFailed
	}
	if cookieOK {
		if v := c.Request.Header.Cookie(sessionCookie); len(v) > 0 && s.validSession(v) {
			return authCookie
		}
	}
	return authFailed
}

// checkCSRF guards a state-changing dashboard call: bearer calls need nothing more (a browser
// never adds that header by itself); cookie and tokenless calls need the CSRF token and, when
// the browser says where the call comes from, the admin API's own origin.
func (s *Server) checkCSRF(c *fasthttp.RequestCtx, how authKind) bool {
	if how == authBearer {
		return true
	}
	if !sameOrigin(c) {
		return false
	}
	got := c.Request.Header.Peek(csrfHeader)
	want := s.csrfToken(c, how)
	return len(got) > 0 && subtle.ConstantTimeCompare(got, []byte(want)) == 1
}

// sameOrigin reports whether the request's Origin (when it has one) is the admin API itself.
func sameOrigin(c *fasthttp.RequestCtx) bool {
	o := c.Request.Header.Peek("Origin")
	if len(o) == 0 {
		return true
	}
	rest, ok := strings.CutPrefix(string(o), "http://")
	if !ok {
		rest, ok = strings.CutPrefix(string(o), "https://")
	}
	return ok && rest == string(c.Request.Header.Host())
}

// hostAllowed guards a tokenless admin API against DNS rebinding: a page of another site whose
// name was made to resolve to 127.0.0.1 would otherwise be same-origin with the dashboard. Such
// a page sends its own name in Host; the dashboard is reached by address or as localhost.
func hostAllowed(c *fasthttp.RequestCtx) bool {
	h := string(c.Request.Header.Host())
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return h == "localhost" || net.ParseIP(h) != nil
}

// setSession answers a successful login: the cookie, then to the dashboard.
func (s *Server) setSession(c *fasthttp.RequestCtx) {
	ck := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(ck)
	ck.SetKey(sessionCookie)
	ck.SetValue(s.newSession(time.Now().Add(sessionLifetime)))
	ck.SetPath("/")
	ck.SetHTTPOnly(true)
	ck.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	ck.SetMaxAge(int(sessionLifetime / time.Second))
	ck.SetSecure(c.IsTLS())
	c.Response.Header.SetCookie(ck)
}

func clearSession(c *fasthttp.RequestCtx) {
	ck := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(ck)
	ck.SetKey(sessionCookie)
	ck.SetPath("/")
	ck.SetHTTPOnly(true)
	ck.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	ck.SetMaxAge(-1)
	c.Response.Header.SetCookie(ck)
}
