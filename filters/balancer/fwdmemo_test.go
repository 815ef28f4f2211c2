package balancer

import (
	"net/netip"
	"testing"

	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestForwardedBlockReused: one exchange serving a run of requests (as a pooled one does) makes
// for each the forwarding block a fresh exchange makes, whether it reuses the last one or not,
// and reuses it when peer and Host repeat.
func TestForwardedBlockReused(t *testing.T) {
	type req struct {
		peer, client, host string
		headers            []string
		rfc7239            bool
	}
	reqs := []req{
		{peer: "10.0.0.1", host: "a.example"},
		{peer: "10.0.0.1", host: "a.example"},
		{peer: "10.0.0.2", host: "a.example"},
		{peer: "10.0.0.2", host: "b.example"},
		{peer: "10.0.0.2", host: ""},
		{peer: "10.0.0.2", host: "b.example"},
		{peer: "10.0.0.2", host: "b.example", headers: []string{"X-Forwarded-For", "1.2.3.4"}},
		{peer: "10.0.0.2", host: "b.example"},
		{peer: "10.0.0.2", host: "b.example", headers: []string{"X-Forwarded-Host", "evil.example"}},
		{peer: "10.0.0.2", client: "192.0.2.7", host: "b.example", headers: []string{"X-Forwarded-For", "192.0.2.7", "X-Forwarded-Proto", "https"}},
		{peer: "10.0.0.2", host: "b.example"},
		{peer: "10.0.0.2", host: "b.example", rfc7239: true},
		{peer: "10.0.0.2", host: "b.example", rfc7239: true, headers: []string{"Forwarded", "for=1.2.3.4"}},
		{peer: "10.0.0.2", host: "b.example"},
		{peer: "::1", host: "b.example"},
		{peer: "::1", host: "b.example"},
	}
	reused := &exchange{}
	hits := 0
	for i, r := range reqs {
		build := func(x *exchange) string {
			c := enginetest.NewCtx(t, "GET", "/", r.headers...)
			c.Request.Header.SetHost(r.host)
			c.Peer = netip.MustParseAddr(r.peer)
			c.ClientAddr = c.Peer
			if r.client != "" {
				c.ClientAddr = netip.MustParseAddr(r.client) // vouched for by trusted_proxies
			}
			x.rfc7239 = r.rfc7239
			_, found := scanHop(c.Request.Header.All(), nil)
			x.setForwarded(c, found)
			return string(x.fwd)
		}
		was := reused.fwdFrom
		got, want := build(reused), build(&exchange{})
		if got != want {
			t.Errorf("request %d (%+v): block %q, a fresh exchange's %q", i, r, got, want)
		}
		if was.valid && reused.fwdFrom.valid && was.peer == reused.fwdFrom.peer && string(was.host) == string(reused.fwdFrom.host) {
			hits++
		}
	}
	if hits < 3 {
		t.Errorf("the block was reused %d times, want at least 3 (requests 1, 5 and 15 repeat the last)", hits)
	}
}
