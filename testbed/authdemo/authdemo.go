// Package authdemo is a tiny authorization service for forward_auth's example and tests: it
// knows a few bearer tokens, lets their holders read, and lets only admins write.
package authdemo

import (
	"strings"

	"github.com/valyala/fasthttp"
)

// User is a token's holder.
type User struct {
	Name  string
	Admin bool
}

// DefaultTokens are the example's tokens.
var DefaultTokens = map[string]User{
	"alice-token": {Name: "alice", Admin: true},
	"bob-token":   {Name: "bob"},
}

// Handler answers forward_auth's questions: 401 with a Bearer challenge without a known token;
// 403 when a user who is not an admin asks to write (X-Forwarded-Method other than GET, HEAD,
// OPTIONS); else 200 with X-Auth-User and X-Auth-Role.
func Handler(tokens map[string]User) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		auth := string(c.Request.Header.Peek("Authorization"))
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		u, known := tokens[tok]
		if !ok || !known {
			c.SetStatusCode(fasthttp.StatusUnauthorized)
			c.Response.Header.Set("WWW-Authenticate", `Bearer realm="demo"`)
			c.SetContentType("application/json")
			c.SetBodyString(`{"error":"a valid bearer token is required"}` + "\n")
			return
		}
		switch string(c.Request.Header.Peek("X-Forwarded-Method")) {
		case "GET", "HEAD", "OPTIONS":
		default:
			if !u.Admin {
				c.SetStatusCode(fasthttp.StatusForbidden)
				c.SetContentType("application/json")
				c.SetBodyString(`{"error":"only admins may write"}` + "\n")
				return
			}
		}
		role := "reader"
		if u.Admin {
			role = "admin"
		}
		c.Response.Header.Set("X-Auth-User", u.Name)
		c.Response.Header.Set("X-Auth-Role", role)
	}
}
