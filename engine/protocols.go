package engine

import (
	"fmt"
	"slices"
)

// Protocols is the set of client protocols a server serves: the server block's protocols.
type Protocols uint8

const (
	ProtoHTTP1 Protocols = 1 << iota // HTTP/1.0 and HTTP/1.1 (fasthttp)
	ProtoH2                          // HTTP/2 over TLS, negotiated by ALPN
	ProtoH2C                         // HTTP/2 over cleartext with prior knowledge (RFC 9113 §3.3)
)

// protocolNames are the names the protocols attribute takes, in the order of the bits.
var protocolNames = []string{"http1", "h2", "h2c"}

// Has reports whether every protocol of q is in p.
func (p Protocols) Has(q Protocols) bool { return p&q == q }

// String lists p's names, for logs.
func (p Protocols) String() string {
	var names []string
	for i, n := range protocolNames {
		if p.Has(1 << i) {
			names = append(names, n)
		}
	}
	return fmt.Sprint(names)
}

// alpn returns the ALPN protocol names a TLS listener offers for p, HTTP/2 first.
func (p Protocols) alpn() []string {
	var names []string
	if p.Has(ProtoH2) {
		names = append(names, alpnH2)
	}
	if p.Has(ProtoHTTP1) {
		names = append(names, alpnHTTP11)
	}
	return names
}

// defaultProtocols is what a server without a protocols attribute serves: HTTP/1.x and, where
// TLS is on, HTTP/2. h2c is opt-in: on cleartext it is a second protocol on the same port, which
// a proxy in front may not expect.
func defaultProtocols(tls bool) Protocols {
	if tls {
		return ProtoHTTP1 | ProtoH2
	}
	return ProtoHTTP1
}

// ParseProtocols parses a protocols list for a listener with (tls) or without TLS.
func ParseProtocols(list []string, tls bool) (Protocols, error) {
	if list == nil {
		return defaultProtocols(tls), nil
	}
	if len(list) == 0 {
		return 0, fmt.Errorf("must name at least one protocol: %q", protocolNames)
	}
	var p Protocols
	for _, n := range list {
		i := slices.Index(protocolNames, n)
		if i < 0 {
			return 0, fmt.Errorf("unknown protocol %q: use \"http1\", \"h2\" or \"h2c\"", n)
		}
		if p.Has(1 << i) {
			return 0, fmt.Errorf("%q is listed twice", n)
		}
		p |= 1 << i
	}
	switch {
	case tls && p.Has(ProtoH2C):
		return 0, fmt.Errorf("\"h2c\" is HTTP/2 over cleartext, and this server has a tls block: use \"h2\"")
	case !tls && p.Has(ProtoH2):
		return 0, fmt.Errorf("\"h2\" is HTTP/2 over TLS and needs a tls block: use \"h2c\" for HTTP/2 over cleartext")
	}
	return p, nil
}

// defaultH2MaxConcurrentStreams is h2_max_concurrent_streams' default: what nginx and Go's own
// HTTP/2 server allow.
const defaultH2MaxConcurrentStreams = 100

// validateHTTP2 checks the server block's protocols and HTTP/2 settings.
func (s *ServerConfig) validateHTTP2() []error {
	var errs []error
	if _, err := ParseProtocols(s.Protocols, s.TLS != nil); err != nil {
		errs = append(errs, &FieldError{Field: "protocols", Err: err})
	}
	if s.H2MaxConcurrentStreams < 1 || s.H2MaxConcurrentStreams > 10000 {
		errs = append(errs, FieldErr("h2_max_concurrent_streams", "must be between 1 and 10000"))
	}
	switch s.H2Server {
	case "", H2ServerNetHTTP, H2ServerSluice:
	default:
		errs = append(errs, FieldErr("h2_server", "must be \"sluice\" or \"net/http\""))
	}
	return errs
}
