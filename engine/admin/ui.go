package admin

import (
	"crypto/subtle"
	"embed"
	"path"
	"strings"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// The dashboard's pages: plain HTML, CSS and JavaScript embedded in the binary (no CDN, no
// build step), served under /ui/. The pages hold no data: app.js reads it from /api/v1/.

//go:embed ui
var uiFiles embed.FS

// contentSecurityPolicy allows the dashboard's own files and nothing else: no inline script or
// style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(c *fasthttp.RequestCtx) {
	h := &c.Response.Header
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer the browser sends "Origin: null" on the
	// login form's POST, and sameOrigin could not tell it from a foreign page.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// handleDashboard serves /ui/… and /api/v1/….
func (s *Server) handleDashboard(c *fasthttp.RequestCtx, p string) {
	securityHeaders(c)
	tokenSet := len(*s.token.Load()) > 0
	if !tokenSet && !hostAllowed(c) {
		c.SetStatusCode(fasthttp.StatusForbidden)
		c.SetContentType("text/plain; charset=utf-8")
		c.SetBodyString("without an admin token the dashboard answers only requests to an IP address or localhost\n")
		return
	}
	switch {
	case strings.HasPrefix(p, "/api/v1/"):
		how := s.authenticate(c, true)
		if how == authFailed {
			c.Response.Header.Set("WWW-Authenticate", `Bearer realm="sluice-admin"`)
			writeJSON(c, fasthttp.StatusUnauthorized, map[string]any{"error": "the admin token is required (Authorization: Bearer, or log in at /ui/login)"})
			return
		}
		s.handleAPI(c, p, how) // dashboard.go
	case p == "/ui":
		c.Redirect("/ui/", fasthttp.StatusMovedPermanently)
	case p == "/ui/login":
		s.handleLogin(c, tokenSet)
	case p == "/ui/logout":
		if !c.IsPost() || !sameOrigin(c) {
			engine.WriteError(&c.Response, fasthttp.StatusMethodNotAllowed)
			return
		}
		clearSession(c)
		c.Redirect("/ui/login", fasthttp.StatusSeeOther)
	case strings.HasPrefix(p, "/ui/assets/"):
		// Scripts and styles hold no data: the login page needs them before a session exists.
		serveFile(c, "ui/assets/"+strings.TrimPrefix(p, "/ui/assets/"))
	case p == "/ui/":
		if s.authenticate(c, true) == authFailed {
			c.Redirect("/ui/login", fasthttp.StatusSeeOther)
			return
		}
		serveFile(c, "ui/index.html")
	default:
		engine.WriteError(&c.Response, fasthttp.StatusNotFound)
	}
}

// handleLogin shows the login form (GET) or checks the token it posts and sets the session.
func (s *Server) handleLogin(c *fasthttp.RequestCtx, tokenSet bool) {
	if !tokenSet {
		c.Redirect("/ui/", fasthttp.StatusSeeOther) // nothing to log in to
		return
	}
	if c.IsGet() || c.IsHead() {
		serveFile(c, "ui/login.html")
		return
	}
	if !c.IsPost() {
		c.Response.Header.Set("Allow", "GET, POST")
		engine.WriteError(&c.Response, fasthttp.StatusMethodNotAllowed)
		return
	}
	given := c.PostArgs().Peek("token")
	if !sameOrigin(c) || len(given) == 0 || subtle.ConstantTimeCompare(given, *s.token.Load()) != 1 {
		c.Redirect("/ui/login?failed=1", fasthttp.StatusSeeOther)
		return
	}
	s.setSession(c)
	c.Redirect("/ui/", fasthttp.StatusSeeOther)
}

func serveFile(c *fasthttp.RequestCtx, name string) {
	name = path.Clean(name)
	if !strings.HasPrefix(name, "ui/") {
		engine.WriteError(&c.Response, fasthttp.StatusNotFound)
		return
	}
	b, err := uiFiles.ReadFile(name)
	if err != nil {
		engine.WriteError(&c.Response, fasthttp.StatusNotFound)
		return
	}
	switch path.Ext(name) {
	case ".html":
		c.SetContentType("text/html; charset=utf-8")
	case ".js":
		c.SetContentType("text/javascript; charset=utf-8")
	case ".css":
		c.SetContentType("text/css; charset=utf-8")
	case ".svg":
		c.SetContentType("image/svg+xml")
	default:
		c.SetContentType("application/octet-stream")
	}
	c.SetBody(b)
}
