package engine

import (
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// ClientCert is the identity of the client certificate a connection's handshake verified
// (mutual TLS, a tls block's client_auth). It is worked out once per connection; filters read
// it through ClientCertKey and must not change it.
type ClientCert struct {
	// Subject and Issuer are the distinguished names in RFC 2253 form ("CN=billing,O=Example").
	Subject string
	Issuer  string
	// URISANs are the URI subject alternative names (a SPIFFE ID such as
	// "spiffe://example.org/ns/prod/sa/billing"); DNSSANs the DNS ones.
	URISANs []string
	DNSSANs []string
	// Fingerprint is the SHA-256 of the certificate's DER encoding, in lower-case hex.
	Fingerprint string
	// Serial is the certificate's serial number in lower-case hex.
	Serial   string
	NotAfter time.Time
	// Certificate is the verified leaf certificate.
	Certificate *x509.Certificate
	// xfcc is the certificate's element of an X-Forwarded-Client-Cert value.
	xfcc []byte
}

// ClientCertKey holds the verified client certificate of the request's connection; unset when
// the client sent none (client_auth mode verify_if_given) or the listener asks for none. The
// server sets it before the pipeline runs.
var ClientCertKey = NewKey[*ClientCert]("client_cert")

// NewClientCert works out the identity of a verified leaf certificate.
func NewClientCert(leaf *x509.Certificate) *ClientCert {
	sum := sha256.Sum256(leaf.Raw)
	cc := &ClientCert{
		Subject:     leaf.Subject.String(),
		Issuer:      leaf.Issuer.String(),
		DNSSANs:     leaf.DNSNames,
		Fingerprint: hex.EncodeToString(sum[:]),
		Serial:      fmt.Sprintf("%x", leaf.SerialNumber),
		NotAfter:    leaf.NotAfter,
		Certificate: leaf,
	}
	for _, u := range leaf.URIs {
		cc.URISANs = append(cc.URISANs, u.String())
	}
	// Envoy's format: Hash, Subject, then one URI and one DNS pair per name.
	b := append([]byte("Hash="), cc.Fingerprint...)
	b = appendXFCCPair(b, "Subject", cc.Subject, true)
	for _, u := range cc.URISANs {
		b = appendXFCCPair(b, "URI", u, false)
	}
	for _, d := range cc.DNSSANs {
		b = appendXFCCPair(b, "DNS", d, false)
	}
	cc.xfcc = b
	return cc
}

// XFCC returns the certificate's element of an X-Forwarded-Client-Cert value
// (Hash=…;Subject="…";URI=…;DNS=…). Don't modify it.
func (cc *ClientCert) XFCC() []byte { return cc.xfcc }

// appendXFCCPair appends ";key=value", the value quoted when asked or when it holds a
// character of the format's syntax (',', ';', '=', '"'), with '"' and '\' escaped.
func appendXFCCPair(b []byte, key, v string, quote bool) []byte {
	b = append(append(append(b, ';'), key...), '=')
	for i := 0; i < len(v) && !quote; i++ {
		switch v[i] {
		case ',', ';', '=', '"', '\\', ' ':
			quote = true
		}
	}
	if !quote {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}

// Forwarding of the client certificate to upstreams (server forward_client_cert), Envoy's modes.
const (
	// ForwardCertSanitize removes X-Forwarded-Client-Cert and sends none (the default).
	ForwardCertSanitize = "sanitize"
	// ForwardCertSanitizeSet replaces it with the verified certificate's element (none without one).
	ForwardCertSanitizeSet = "sanitize_set"
	// ForwardCertForwardOnly passes a trusted proxy's header on as it is and adds nothing.
	ForwardCertForwardOnly = "forward_only"
	// ForwardCertAppendForward passes a trusted proxy's header on with this connection's
	// element appended.
	ForwardCertAppendForward = "append_forward"
)

// HeaderXFCC is the header that carries client certificates to upstreams.
const HeaderXFCC = "X-Forwarded-Client-Cert"

// The request headers through which http-wasm guests see the client certificate: the wasm
// filter sets them while its guest handles the request (SetClientCertHeaders), and the server
// removes any a client sends (in every '-'/'_' spelling).
const (
	ClientCertHeaderPrefix      = "X-Sluice-Client-Cert-"
	HeaderClientCertSubject     = ClientCertHeaderPrefix + "Subject"
	HeaderClientCertURI         = ClientCertHeaderPrefix + "URI"
	HeaderClientCertDNS         = ClientCertHeaderPrefix + "DNS"
	HeaderClientCertFingerprint = ClientCertHeaderPrefix + "Fingerprint"
	HeaderClientCertSerial      = ClientCertHeaderPrefix + "Serial"
	HeaderClientCertNotAfter    = ClientCertHeaderPrefix + "Not-After"
)

var clientCertHeaders = []string{HeaderClientCertSubject, HeaderClientCertURI, HeaderClientCertDNS,
	HeaderClientCertFingerprint, HeaderClientCertSerial, HeaderClientCertNotAfter}

// SetClientCertHeaders sets the X-Sluice-Client-Cert-* headers of cc on h (one URI or DNS
// header per name; NotAfter in RFC 3339). DelClientCertHeaders removes them.
func SetClientCertHeaders(h *fasthttp.RequestHeader, cc *ClientCert) {
	h.Set(HeaderClientCertSubject, cc.Subject)
	for _, u := range cc.URISANs {
		h.Add(HeaderClientCertURI, u)
	}
	for _, d := range cc.DNSSANs {
		h.Add(HeaderClientCertDNS, d)
	}
	h.Set(HeaderClientCertFingerprint, cc.Fingerprint)
	h.Set(HeaderClientCertSerial, cc.Serial)
	var buf [64]byte
	h.SetBytesV(HeaderClientCertNotAfter, cc.NotAfter.UTC().AppendFormat(buf[:0], time.RFC3339))
}

// DelClientCertHeaders removes the X-Sluice-Client-Cert-* headers from h.
func DelClientCertHeaders(h *fasthttp.RequestHeader) {
	for _, n := range clientCertHeaders {
		h.Del(n)
	}
}

// isClientCertHeader reports whether k is one of the X-Sluice-Client-Cert-* names, with '_'
// read as '-'.
func isClientCertHeader(k []byte) bool {
	const p = "x-sluice-client-cert-"
	if len(k) <= len(p) || (k[0]|0x20) != 'x' {
		return false
	}
	return equalFoldDash(k[:len(p)], p)
}

// isXFCC reports whether k is X-Forwarded-Client-Cert (the '_' spelling goes as a gateway-set
// header's).
func isXFCC(k []byte) bool {
	return len(k) == len(HeaderXFCC) && ascii.EqualFoldLower(k, "x-forwarded-client-cert")
}

// ParseForwardClientCert checks a forward_client_cert mode.
func ParseForwardClientCert(s string) error {
	switch s {
	case "", ForwardCertSanitize, ForwardCertSanitizeSet, ForwardCertForwardOnly, ForwardCertAppendForward:
		return nil
	}
	return fmt.Errorf("unknown mode %q: use sanitize, sanitize_set, forward_only or append_forward", s)
}

// connTLS is what the server works out once per TLS connection and client_auth table: the
// policy of its server name and the verified client certificate.
type connTLS struct {
	table  *clientAuthTable // what it was worked out from
	sni    string
	chains [][]*x509.Certificate
	policy *clientAuthPolicy
	cert   *ClientCert // nil: none verified
	// refused is why the certificate is no longer accepted under table (a CRL or CA file
	// changed since the handshake); nil: it is.
	refused error
}

// under returns the connection's state under a newer table t (a reload, a changed CA or CRL
// file): its name's policy there, and whether that policy still accepts its certificate. It
// runs once per connection and table.
func (st *connTLS) under(t *clientAuthTable) *connTLS {
	ns := &connTLS{table: t, sni: st.sni, chains: st.chains, policy: forName(t, st.sni), cert: st.cert}
	if ns.cert != nil && ns.policy != nil && ns.policy.mode != tls.NoClientCert {
		ns.refused = ns.policy.recheck(st.chains, time.Now())
		if ns.refused != nil && ns.policy.log != nil {
			ns.policy.log.Warn("a connection's client certificate is no longer accepted; its requests get 403",
				"subject", ns.cert.Subject, "fingerprint", ns.cert.Fingerprint, "err", ns.refused)
		}
	}
	return ns
}

// connTLSOf returns the TLS connection state of the request's connection: its listener's
// client authentication (nil: none) and, worked out from it on the connection's first request
// and kept on its clientConn, the policy of its server name and its verified certificate. cc is
// the request's clientConn if known; else the one under the TLS connection (an HTTP/2
// connection's streams share it).
func connTLSOf(fc *fasthttp.RequestCtx, cc *clientConn) (*clientAuthTable, *connTLS) {
	tc, ok := fc.Conn().(*tls.Conn)
	if !ok {
		return nil, nil
	}
	if cc == nil {
		if cc, ok = tc.NetConn().(*clientConn); !ok {
			return nil, nil
		}
	}
	t := cc.lis.clientAuth()
	if t == nil {
		return nil, nil
	}
	if st := cc.tlsState.Load(); st != nil {
		if st.table != t {
			st = st.under(t)
			cc.tlsState.Store(st)
		}
		return t, st
	}
	cs := tc.ConnectionState()
	st := &connTLS{table: t, sni: cs.ServerName, chains: cs.VerifiedChains, policy: forName(t, cs.ServerName)}
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		st.cert = NewClientCert(cs.VerifiedChains[0][0])
	}
	cc.tlsState.Store(st)
	return t, st
}

// clientCert sets the request's client certificate (ClientCertKey) and answers 421 when the request's host falls under
// another client_auth policy than its connection's server name: a client must not complete the
// handshake of a name that asks for no certificate and then ask for one that does. It returns
// the status to answer with (0: serve the request). A listener without client_auth costs a
// type assertion and an atomic load.
func (s *Server) clientCert(c *Ctx, cc *clientConn) int {
	t, st := connTLSOf(c.Fast, cc)
	if st == nil {
		return 0
	}
	return s.applyClientCert(c, st, t)
}

// applyClientCert is clientCert for a known connection state.
func (s *Server) applyClientCert(c *Ctx, st *connTLS, t *clientAuthTable) int {
	if t.perName && !samePolicy(forName(t, stripPort(c.Request.Header.Host())), st.policy) {
		return fasthttp.StatusMisdirectedRequest
	}
	if st.cert == nil {
		return 0
	}
	if st.refused != nil || c.Start.After(st.cert.NotAfter) {
		// Verified at the handshake, no longer valid: revoked or its CA removed since (a
		// replaced CRL or CA file), or expired while the connection lasted.
		if c.Failure == nil {
			c.Failure = fmt.Errorf("client certificate %s (%s) no longer accepted: %w", st.cert.Subject, st.cert.Fingerprint, cmp.Or(st.refused, errCertExpired))
		}
		return fasthttp.StatusForbidden
	}
	ClientCertKey.Set(c, st.cert)
	return 0
}

var errCertExpired = errors.New("it expired after the handshake")

// forwardsXFCC reports whether a forward_client_cert mode passes a trusted proxy's
// X-Forwarded-Client-Cert on.
func forwardsXFCC(mode string) bool {
	return mode == ForwardCertForwardOnly || mode == ForwardCertAppendForward
}

// forwardClientCert makes the request's X-Forwarded-Client-Cert what the pipeline's
// forward_client_cert (else the server's) says. Cleaning removed a client's header already,
// except a trusted proxy's when some pipeline forwards it (headerPolicy.keepXFCC). A request
// without a client certificate, on a gateway where no pipeline forwards, costs a Key lookup.
func (s *Server) forwardClientCert(g *Gateway, c *Ctx, p *Pipeline) {
	cert, _ := ClientCertKey.Get(c)
	kept := g.headers != nil && g.headers.keepXFCC // else cleaning removed any
	if cert == nil && !kept {
		return
	}
	mode := s.cfg.ForwardClientCert
	if p.ForwardClientCert != "" {
		mode = p.ForwardClientCert
	}
	h := &c.Request.Header
	switch mode {
	case ForwardCertForwardOnly:
	case ForwardCertAppendForward:
		if cert == nil {
			return
		}
		if prev := h.Peek(HeaderXFCC); len(prev) > 0 {
			// Built in the request's scratch memory: SetBytesV copies it.
			c.hdrScratch = append(append(append(c.hdrScratch[:0], prev...), ','), cert.xfcc...)
			h.SetBytesV(HeaderXFCC, c.hdrScratch)
		} else {
			h.SetBytesV(HeaderXFCC, cert.xfcc)
		}
	case ForwardCertSanitizeSet:
		if cert != nil {
			h.SetBytesV(HeaderXFCC, cert.xfcc)
		} else if kept {
			h.Del(HeaderXFCC)
		}
	default: // sanitize
		if kept {
			h.Del(HeaderXFCC)
		}
	}
}
