package balancer

import (
	"net/netip"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

func TestAppendForwarded(t *testing.T) {
	for _, tt := range []struct {
		peer, host, prev, want string
	}{
		{"192.0.2.1", "app.example", "", `Forwarded: for=192.0.2.1;proto=http;host="app.example"` + "\r\n"},
		{"2001:db8::1", "app.example:8080", "", `Forwarded: for="[2001:db8::1]";proto=http;host="app.example:8080"` + "\r\n"},
		{"192.0.2.1", `a"b\c`, "for=198.51.100.7", `Forwarded: for=198.51.100.7, for=192.0.2.1;proto=http;host="a\"b\\c"` + "\r\n"},
	} {
		var req fasthttp.Request
		req.Header.SetHost(tt.host)
		if tt.prev != "" {
			req.Header.Set("Forwarded", tt.prev)
		}
		c := &engine.Ctx{Request: &req, Peer: netip.MustParseAddr(tt.peer)}
		if got := string(appendForwarded(nil, c)); got != tt.want {
			t.Errorf("appendForwarded = %q, want %q", got, tt.want)
		}
		if len(req.Header.Peek("Forwarded")) != 0 {
			t.Errorf("the request's own Forwarded header stays in the header list")
		}
	}
}
