package balancer

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// TestStatusLineIsSluices: the client gets Sluice's own HTTP version and the standard reason
// phrase of the final status, whatever version and phrase the upstream used, and after a
// response phase changed the status ("404 OK" was sent before finishResponse cleared them).
func TestStatusLineIsSluices(t *testing.T) {
	addr := serveUpstream(t, func(c *fasthttp.RequestCtx) {
		c.Response.Header.SetProtocol([]byte("HTTP/1.0"))
		c.Response.Header.SetStatusMessage([]byte("Alright Then"))
		c.SetBodyString("hello")
	})
	u := buildFor(t, t.Name(), validConfig(addr), &engine.BuildEnv{})
	for _, tc := range []struct {
		status int
		want   string
	}{
		{0, "HTTP/1.1 200 OK\r\n"},
		{404, "HTTP/1.1 404 Not Found\r\n"},
	} {
		c := enginetest.NewCtx(t, "GET", "/x")
		enginetest.Serve(c, u.Serve)
		if string(c.Response.Body()) != "hello" {
			t.Fatalf("body %q", c.Response.Body())
		}
		if tc.status != 0 {
			c.Response.SetStatusCode(tc.status) // as a response-phase filter would
		}
		if got := string(c.Response.Header.Header()); !strings.HasPrefix(got, tc.want) {
			t.Errorf("status %d: the client's status line is %q, want %q", tc.status, strings.SplitAfter(got, "\r\n")[0], tc.want)
		}
	}
}
