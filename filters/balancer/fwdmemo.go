package balancer

import (
	"bytes"
	"net/netip"
)

// fwdInputs is what setForwarded built an exchange's forwarding block (X-Forwarded-For, -Proto,
// -Host and Via) from, when nothing else went into it: the socket peer, whether the client's
// connection is TLS, and the Host header. A pooled exchange serves one request after another,
// from whichever connection: when the next one has the same three, the block it would build is
// the one it has (TestForwardedBlockReused).
type fwdInputs struct {
	valid bool
	tls   bool
	peer  netip.Addr
	host  []byte
}

// same reports whether the block was built from peer, tls and host.
func (f *fwdInputs) same(peer netip.Addr, tls bool, host []byte) bool {
	return f.valid && f.peer == peer && f.tls == tls && bytes.Equal(f.host, host)
}

// set records the block's inputs.
func (f *fwdInputs) set(peer netip.Addr, tls bool, host []byte) {
	f.valid, f.peer, f.tls = true, peer, tls
	f.host = append(f.host[:0], host...)
}
