package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// The client's request is cleaned once, when it arrives, before routing and before any filter
// (Server.clean, sanitize):
//
//   - headers named in Connection are removed (RFC 9110 §7.6.1), except the ones the gateway
//     itself relies on or sets (protectedTokens, the request-id header). Removing them later, as
//     the balancer used to, let `Connection: X-User-Id` delete the header the jwt filter had just
//     set. At most maxConnectionTokens tokens are accepted: each removal walks the header list,
//     so thousands of tokens cost milliseconds of CPU per request;
//   - from a peer outside trusted_proxies, the server's untrusted_headers (Forwarded, X-Real-IP,
//     X-Original-URL, …) are removed, with their '_' for '-' spellings (X_Original_URL): upstreams
//     act on them as if the gateway vouched for them;
//   - a header whose name differs from one the gateway or a filter sets only by '_' for '-'
//     (X_Forwarded_For, X_User_Id) is removed: CGI-style upstreams (PHP, some nginx setups) map
//     both spellings to the same variable, so the client's value could win over the gateway's;
//   - X-Forwarded-Client-Cert is removed unless the peer is a trusted proxy and the server's
//     forward_client_cert passes it on (forward_only, append_forward), and the headers through
//     which Wasm guests see the client certificate (X-Sluice-Client-Cert-*) always are
//     (clientcert.go): they speak for the gateway's verification of a client certificate;
//   - trailer fields of a chunked request are dropped: the request goes upstream re-framed with
//     Content-Length, which carries no trailers, and fasthttp would fold them into the header
//     section, where a rule in front of the gateway never saw them.

// maxConnectionTokens caps the tokens of a request's Connection header(s); more → 400.
const maxConnectionTokens = 32

// DefaultUntrustedHeaders is the server's untrusted_headers when the config does not set it:
// headers upstreams commonly believe about the client or the request, which only a trusted proxy
// may send. X-Forwarded-For, -Proto and -Host are the balancer's own business (it rebuilds them).
var DefaultUntrustedHeaders = []string{
	"Forwarded", "X-Real-IP", "X-Client-IP", "True-Client-IP",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Ssl",
	"X-Original-URL", "X-Rewrite-URL", "X-Original-Forwarded-For",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
}

// gatewaySetHeaders are set on forwarded requests by the gateway itself (the balancer, and the
// server's request id, added per server): a client's header that spells one of them with '_'
// for '-' is removed.
var gatewaySetHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Via",
	"X-Real-IP", "Traceparent", "Tracestate", HeaderXFCC}

// protectedTokens are never removed because Connection names them: framing and routing
// (Host, Content-Length, Transfer-Encoding), credentials a filter verified (Authorization), what
// the balancer needs to see (Connection, Upgrade) and what it rebuilds (X-Forwarded-*,
// Forwarded, Via).
var protectedTokens = newHeaderSet([]string{"Host", "Content-Length", "Transfer-Encoding", "Authorization",
	"Connection", "Upgrade", "Close", "Keep-Alive", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Via"})

// headerSet is a set of header names, compared ASCII case-insensitively. Names are bucketed by
// length, so a header is compared with the few names as long as it (most with none).
type headerSet struct {
	byLen [64][]string // lower-case names, by length
	long  []string     // names of 64 bytes or more
}

func newHeaderSet(names []string) *headerSet {
	s := &headerSet{}
	for _, n := range names {
		s.add(n)
	}
	return s
}

func (s *headerSet) add(name string) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || s.has([]byte(n)) {
		return
	}
	if len(n) < len(s.byLen) {
		s.byLen[len(n)] = append(s.byLen[len(n)], n)
	} else {
		s.long = append(s.long, n)
	}
}

func (s *headerSet) has(k []byte) bool {
	list := s.long
	if len(k) < len(s.byLen) {
		list = s.byLen[len(k)]
	}
	for _, n := range list {
		if ascii.EqualFoldLower(k, n) {
			return true
		}
	}
	return false
}

// hasUnderscoreVariant reports whether k, which has an underscore, names a header of the set
// when each '_' is read as '-' (the set's names are stored as they are spelled, with '-').
func (s *headerSet) hasUnderscoreVariant(k []byte) bool {
	list := s.long
	if len(k) < len(s.byLen) {
		list = s.byLen[len(k)]
	}
	for _, n := range list {
		if equalFoldDash(k, n) {
			return true
		}
	}
	return false
}

// equalFoldDash compares k with the lower-case name n, ASCII case-insensitively, with '_' in k
// matching '-' in n.
func equalFoldDash(k []byte, n string) bool {
	if len(k) != len(n) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != n[i] {
			return false
		}
	}
	return true
}

// headerPolicy is what Server.sanitize needs, worked out once per server and gateway.
type headerPolicy struct {
	untrusted *headerSet // removed from peers outside trusted_proxies
	// guarded are the names the gateway and the gateway's filters set: their underscore
	// spellings are removed.
	guarded *headerSet
	reqID   []byte // the request-id header's name, never removed for Connection
	// keepXFCC lets a trusted proxy's X-Forwarded-Client-Cert through (forward_client_cert).
	keepXFCC bool
}

// newHeaderPolicy makes the server's policy; filterSet are the request headers the gateway's
// filters declared (BuildEnv.SetsRequestHeaders).
func newHeaderPolicy(cfg *ServerConfig, filterSet []string) *headerPolicy {
	untrusted := cfg.UntrustedHeaders
	if untrusted == nil {
		untrusted = DefaultUntrustedHeaders
	}
	p := &headerPolicy{untrusted: newHeaderSet(untrusted), guarded: newHeaderSet(gatewaySetHeaders), reqID: []byte(cfg.RequestID),
		keepXFCC: forwardsXFCC(cfg.ForwardClientCert)}
	if cfg.RequestID != "" {
		p.guarded.add(cfg.RequestID)
	}
	for _, n := range filterSet {
		p.guarded.add(n)
	}
	return p
}

// sanitize cleans the client's request as the comment at the top of this file says. It returns
// a status to answer with instead of serving the request (0: serve it). scratch is reusable
// memory, returned grown.
func sanitize(h *fasthttp.RequestHeader, pol *headerPolicy, trusted bool, scratch []byte) ([]byte, int) {
	if h.ContentLength() == -1 {
		var ok bool
		if scratch, ok = dropTrailers(h, scratch); !ok {
			return scratch, fasthttp.StatusBadRequest
		}
	}
	// One pass over the header list finds the names to remove (each ended by a 0 byte: header
	// names cannot contain one) and whether there is a Connection header.
	del := scratch[:0]
	hasConn := false
	for k, v := range h.All() {
		if len(k) == len("connection") && ascii.EqualFoldLower(k, "connection") {
			// Most clients send only keep-alive (fasthttp keeps close as a flag): nothing to
			// remove, and no second pass.
			hasConn = hasConn || !(len(v) == len("keep-alive") && ascii.EqualFoldLower(v, "keep-alive"))
			continue
		}
		drop := !trusted && pol.untrusted.has(k)
		if !drop && len(k) >= len(HeaderXFCC) && (k[0]|0x20) == 'x' {
			drop = isClientCertHeader(k) || (isXFCC(k) && !(trusted && pol.keepXFCC))
		}
		if !drop && bytes.IndexByte(k, '_') >= 0 {
			// CGI-style upstreams read X_Original_URL as X-Original-URL: an untrusted
			// header's underscore spelling goes with it.
			drop = pol.guarded.hasUnderscoreVariant(k) || (!trusted && pol.untrusted.hasUnderscoreVariant(k))
		}
		if drop {
			del = append(append(del, k...), 0)
		}
	}
	for names := del; len(names) > 0; {
		i := bytes.IndexByte(names, 0)
		h.DelBytes(names[:i])
		names = names[i+1:]
	}
	scratch = del
	if !hasConn {
		return scratch, 0
	}
	// The Connection values, each ended by ','.
	conn := scratch[:0]
	for k, v := range h.All() {
		if len(k) == len("connection") && ascii.EqualFoldLower(k, "connection") {
			conn = append(append(conn, v...), ',')
		}
	}
	if !removeConnectionTokens(h, conn, pol.reqID) {
		return conn, fasthttp.StatusBadRequest
	}
	return conn, 0
}

// removeConnectionTokens deletes the headers a Connection value list names, but never the
// protected ones or the request-id header. It reports false, deleting nothing, when the list
// has more than maxConnectionTokens tokens.
func removeConnectionTokens(h *fasthttp.RequestHeader, list, reqID []byte) bool {
	n := 0
	for _, c := range list {
		if c == ',' {
			n++
		}
	}
	if n > maxConnectionTokens {
		// Count the tokens only when the commas allow too many: empty list elements (",,")
		// are allowed and do not count.
		n = 0
		for tok := range bytes.SplitSeq(list, []byte{','}) {
			if len(bytes.TrimSpace(tok)) > 0 {
				n++
			}
		}
		if n > maxConnectionTokens {
			return false
		}
	}
	for len(list) > 0 {
		i := bytes.IndexByte(list, ',')
		tok := bytes.TrimSpace(list[:i]) // list ends with ','
		list = list[i+1:]
		if len(tok) == 0 || protectedTokens.has(tok) || (len(reqID) > 0 && ascii.EqualFold(tok, reqID)) {
			continue
		}
		h.DelBytes(tok)
	}
	return true
}

// dropTrailers removes the trailer section of a chunked request. fasthttp keeps the received
// trailer fields apart from the header section but merges them into it as soon as anyone
// deletes the Trailer header (as the balancer does, Trailer being hop-by-hop); and Peek reads
// them when the header section lacks the name. A header-section field with a trailer's name is
// kept: its values are put back after the name is deleted from both sections. More than
// maxConnectionTokens trailer names are refused (false): each costs a walk of the header list.
func dropTrailers(h *fasthttp.RequestHeader, scratch []byte) ([]byte, bool) {
	names := 0
	for range h.Trailers() {
		names++
	}
	if names == 0 {
		return scratch, true
	}
	if names > maxConnectionTokens {
		return scratch, false
	}
	// Each name, then its header-section values, every part prefixed by its length (values
	// may hold any byte but NUL): len name (nvalues (len value)*).
	buf := scratch[:0]
	for name := range h.Trailers() {
		buf = append(binary.AppendUvarint(buf, uint64(len(name))), name...)
		n := 0
		for k := range h.All() {
			if ascii.EqualFold(k, name) {
				n++
			}
		}
		buf = binary.AppendUvarint(buf, uint64(n))
		for k, v := range h.All() {
			if ascii.EqualFold(k, name) {
				buf = append(binary.AppendUvarint(buf, uint64(len(v))), v...)
			}
		}
	}
	h.Del(fasthttp.HeaderTrailer) // forgets the announced names, merging the trailer fields in
	for rest := buf; len(rest) > 0; {
		var name []byte
		name, rest = lengthPrefixed(rest)
		n, k := binary.Uvarint(rest)
		rest = rest[k:]
		h.DelBytes(name) // from both sections
		for range int(n) {
			var v []byte
			v, rest = lengthPrefixed(rest)
			h.AddBytesKV(name, v)
		}
	}
	return buf, true
}

// lengthPrefixed splits b after the uvarint-length-prefixed part at its start.
func lengthPrefixed(b []byte) (part, rest []byte) {
	n, k := binary.Uvarint(b)
	return b[k : k+int(n)], b[k+int(n):]
}

// clean checks the request-target's length and cleans the request's headers (sanitize); it
// returns a status to answer with instead of serving the request (0: serve it).
func (s *Server) clean(g *Gateway, c *Ctx, peer netip.Addr) int {
	h := &c.Request.Header
	maxURI := int(s.cfg.MaxURIBytes)
	if maxURI <= 0 {
		maxURI = defaultMaxURIBytes
	}
	if len(h.RequestURI()) > maxURI {
		return fasthttp.StatusRequestURITooLong
	}
	pol := g.headers
	if pol == nil {
		pol = defaultHeaderPolicy // a Gateway not made by Build
	}
	status := 0
	c.hdrScratch, status = sanitize(h, pol, s.isTrustedPeer(peer), c.hdrScratch[:0])
	return status
}

const defaultMaxURIBytes = 8 << 10

var defaultHeaderPolicy = newHeaderPolicy(&ServerConfig{}, nil)

// isTrustedPeer reports whether the socket peer is one of trusted_proxies.
func (s *Server) isTrustedPeer(peer netip.Addr) bool {
	return len(s.trusted) > 0 && s.trusted.has(peer)
}
