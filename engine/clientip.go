package engine

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// ParsePrefixes parses trusted_proxies entries: CIDR prefixes ("10.0.0.0/8") or single addresses.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("invalid address or CIDR prefix %q", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// trustedSet answers whether a peer is a trusted proxy.
type trustedSet []netip.Prefix

func (t trustedSet) has(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrOf returns the IP of a net.Addr without allocating for TCP addresses.
// setPeer sets c.Peer from the connection, taking what the connection worked out once when it
// was accepted, and returns it with the connection (nil when it is not one of the server's own).
func (c *Ctx) setPeer(fc *fasthttp.RequestCtx) (netip.Addr, *clientConn) {
	conn := fc.Conn()
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if cc, ok := conn.(*clientConn); ok {
		c.Peer, c.peerText = cc.peer, cc.peerText
		return cc.peer, cc
	}
	c.Peer = addrOf(fc.RemoteAddr())
	return c.Peer, nil
}

func addrOf(a net.Addr) netip.Addr {
	switch x := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(x.IP)
		return ip.Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clientAddr decides the client address: the socket peer, unless the peer is a trusted proxy, in
// which case X-Forwarded-For is walked from the right and the first untrusted hop is the client.
func (t trustedSet) clientAddr(peer netip.Addr, xff []byte) netip.Addr {
	if len(t) == 0 || len(xff) == 0 || !t.has(peer) {
		return peer
	}
	client := peer
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		hop := bytes.TrimSpace(xff[i+1:])
		xff = xff[:max(i, 0)]
		a, err := netip.ParseAddr(string(hop)) // string(hop) does not escape: no allocation
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !t.has(client) {
			return client
		}
		if i < 0 {
			break
		}
	}
	return client
}
