package balancer

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/bits"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// The hop-by-hop headers of RFC 9110 §7.6.1 (and the de-facto Keep-Alive and Proxy-Connection)
// describe one connection and are never forwarded. They are found in the one pass over the
// header list that also collects the Connection tokens, and deleted only when present: each Del
// re-normalizes its name and walks the list, 0.1 µs apiece on the hot path.
var hopHeaders = [...]string{"Connection", "Transfer-Encoding", "Trailer", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authorization",
	// The settings of an h2c upgrade (RFC 7540 §3.2.1), connection-specific; an upgrade the
	// pipeline allows is forwarded by serveUpgrade with only Upgrade and Connection put back.
	"HTTP2-Settings",
	// Not hop-by-hop, but the server has answered it (reading the whole body first).
	"Expect"}

// The X-Forwarded-* headers setForwarded replaces, the trace context headers a tracing
// observer replaces, and Via (finishResponse) are looked for in the same pass, after the
// hop-by-hop ones: bits hasXFF, hasXFProto, hasXFHost, hasTraceparent, hasTracestate and hasVia
// of scanHop's mask.
var scanned = func() []string {
	names := append(hopHeaders[:], hdrXFF, hdrXFProto, hdrXFHost, hdrTraceparent, hdrTracestate, hdrVia)
	for i, n := range names {
		// Lower case, for ascii.EqualFoldLower: comparing with a []byte(name) conversion would
		// copy the name for every header and every candidate.
		names[i] = strings.ToLower(n)
	}
	return names
}()

const (
	hasXFF = 1 << (len(hopHeaders) + iota)
	hasXFProto
	hasXFHost
	hasTraceparent
	hasTracestate
	hasVia
)

// Bits of scanHop's mask for hop-by-hop headers the balancer looks at itself.
const (
	hasConnection = 1 << 0 // hopHeaders[0]
	hasUpgrade    = 1 << 6 // hopHeaders[6]
	// hasHTTP2Settings is hopHeaders[9]'s bit.
	hasHTTP2Settings = 1 << 9
)

// scannedByLen lists, for each name length, the indexes of the scanned names that long: a header
// is compared only with those (most headers with none), not with all sixteen.
var scannedByLen = func() (t [20][]uint8) {
	if hopHeaders[0] != "Connection" || hopHeaders[6] != "Upgrade" || hopHeaders[9] != "HTTP2-Settings" {
		panic("balancer: hasConnection, hasUpgrade and hasHTTP2Settings do not match hopHeaders")
	}
	for i, n := range scanned {
		t[len(n)] = append(t[len(n)], uint8(i))
	}
	return t
}()

// scanHop reads a header list once: it appends the values of Connection headers (comma-ended)
// to conn and reports which of the scanned headers are present, as a bit mask.
func scanHop(all func(func(k, v []byte) bool), conn []byte) ([]byte, uint32) {
	var mask uint32
	all(func(k, v []byte) bool {
		if len(k) >= len(scannedByLen) {
			return true
		}
		for _, i := range scannedByLen[len(k)] {
			if ascii.EqualFoldLower(k, scanned[i]) {
				mask |= 1 << i
				if i == 0 {
					conn = append(append(conn, v...), ',')
				}
			}
		}
		return true
	})
	return conn, mask
}

// removeHop deletes the hop-by-hop headers scanHop found. It visits only the mask's set bits:
// most messages have none, and walking all ten names for both the request and the response was
// 240 instructions per request.
func removeHop(h interface{ Del(string) }, mask uint32) {
	for m := mask & hopMask; m != 0; m &= m - 1 {
		h.Del(hopHeaders[bits.TrailingZeros32(m)])
	}
}

// hopMask has the bits of scanHop's mask that stand for hop-by-hop headers.
const hopMask = 1<<len(hopHeaders) - 1

var (
	hdrXFF     = "X-Forwarded-For"
	hdrXFProto = "X-Forwarded-Proto"
	hdrXFHost  = "X-Forwarded-Host"
	hdrVia     = "Via"
	// The W3C trace context headers, replaced by an AttemptObserver's lines.
	hdrTraceparent = "Traceparent"
	hdrTracestate  = "Tracestate"
	viaValue       = []byte("1.1 sluice")
)

// exchange is the per-request state of one proxied request, kept with the pooled engine.Ctx:
// what prepare changed in the client's request, to undo it afterwards, and scratch space, so the
// request path does not allocate.
type exchange struct {
	scratch  []byte
	fwd      []byte // the X-Forwarded-* and Via lines written after the request's own headers
	trace    []byte // the attempt's trace context lines, written after fwd
	head     []byte // the request head as it goes on the wire
	h2fields []byte // an HTTP/2 target's request fields, made into one string (h2transport.go)
	conn     []byte // the values of the Connection headers
	origURI  []byte // the client's request-target, when the upstream gets another one
	origHost []byte // the client's Host, when a rewrite filter replaced it (hostSet)
	hostSet  bool
	traceHdr uint32 // scanHop's hasTraceparent and hasTracestate bits: the client's, still in the request
	tried    [maxRetryAttempts + 1]int
	attempts int // the retries this request may make: the upstream's, or the pipeline's override
	ntried   int
	protocol []byte // the Upgrade header of a protocol switch (the protocols the pipeline allows)
	settings []byte // the HTTP2-Settings header of an allowed h2c switch
	upgrade  bool   // the request asks to switch protocols
	noHost   bool   // the client sent no Host header
	rewrote  bool   // origURI holds the client's request-target
	close    bool   // the client asked to close its connection
	rfc7239  bool   // send a Forwarded header (the server's forwarded_header)
	// fwdFrom is what fwd was made from when it holds nothing the client's own headers gave
	// (setForwarded): a later request on this pooled exchange with the same reuses fwd.
	fwdFrom fwdInputs
	// overBudget: the server's held_response_budget had no room for the response (heldbudget.go).
	overBudget bool
	held       int // what the response has reserved of the budget

	// A request body streamed to the upstream as it arrives (stream.go).
	streamed  bool
	bodyReads int     // reads of the client's body that brought data
	bodyEOF   bool    // the client's body has ended
	first     []byte  // the frame of the first read, in sbuf, for a replay
	firstData []byte  // the data in it, for a replay to an HTTP/2 target (h2transport.go)
	sbuf      *[]byte // the copy buffer, from streamBufs
	// live: the response streams because it is a live one (stream.go), not for its size.
	live bool
	// slack, when set, replaces the upstream's deadline slack for this request (a gRPC call's
	// own short deadline: grpc.go).
	slack       time.Duration
	grpcTimeout []byte // the grpc-timeout value sent upstream
	// replay keeps a gRPC call's streamed request body for a retry on grpc_on (grpc.go), or nil.
	replay *replaySource
	// unreplayable: a streamed request body was (partly) sent: no retry can send it again.
	unreplayable bool
}

const maxPooledScratch = 256 << 10

// acquireExchange returns c's exchange: it stays with the pooled Ctx (engine.Ctx.TerminalState),
// so its buffers are reused without a pool of the balancer's own.
func acquireExchange(c *engine.Ctx) *exchange {
	x, _ := c.TerminalState.(*exchange)
	if x == nil {
		x = new(exchange)
		c.TerminalState = x
	}
	return x
}

// releaseExchange readies x for c's next request.
func releaseExchange(x *exchange) {
	x.ntried = 0
	x.slack = 0
	x.replay = nil // the call's own: its stream may still be read after Serve
	x.overBudget = false
	x.held = 0
	x.live = false
	if x.streamed {
		x.releaseStream()
	}
	x.unreplayable = false
	// Don't keep a large response body's buffer alive with the pooled Ctx.
	if cap(x.scratch) > maxPooledScratch {
		x.scratch = nil
	}
}

// prepare turns the client's request into the one the upstream receives, in place (a copy would
// cost more than everything else the balancer does): the raw path minus strip_prefix, no
// hop-by-hop headers, and a body framed by Content-Length. The X-Forwarded-* and Via lines are
// made ready in x.fwd and only written on the wire, after the request's own headers: adding them
// to the header list and serializing them back cost four times as much. Later filters' response
// phases see the request as the request phases left it, less what is hop-by-hop and the
// X-Forwarded-* headers an untrusted client sent; restore puts back the two things that are not
// the upstream's business: the client's request-target and whether the client's connection
// closes after this response.
func (x *exchange) prepare(c *engine.Ctx) {
	h := &c.Request.Header
	// The client's Connection header lists further hop-by-hop headers: collect its values before
	// deleting anything (fasthttp keeps "close" as a flag, the other tokens as a header).
	// Keep-alive to the upstream whatever the client asked for its own connection (read before
	// deleting Connection, which clears it).
	x.close = h.ConnectionClose()
	var found uint32
	x.conn, found = scanHop(h.All(), x.conn[:0])
	// A request to switch protocols (WebSocket) names "upgrade" in Connection and says which
	// protocol in Upgrade: keep the protocols the pipeline allows, for serveUpgrade to put back.
	// Any other (h2c would tunnel past every filter) is removed with the hop-by-hop headers, and
	// the request goes on as an ordinary one.
	x.upgrade = false
	if found&hasUpgrade != 0 && hasToken(x.conn, tokenUpgrade) {
		x.protocol = allowedUpgrades(x.protocol[:0], h.PeekBytes(hdrUpgrade), c.Pipeline)
		x.upgrade = len(x.protocol) > 0
		x.settings = x.settings[:0]
		if x.upgrade && found&hasHTTP2Settings != 0 {
			x.settings = append(x.settings, h.PeekBytes(hdrHTTP2Settings)...)
		}
	}
	// The Connection header's other tokens were removed by the server when the request arrived
	// (before any filter could set a header a client named there).
	removeHop(h, found)
	x.traceHdr = found & (hasTraceparent | hasTracestate)
	x.trace = x.trace[:0]
	h.ResetConnectionClose()

	x.rewrote = false
	if uri := h.RequestURI(); !targetKept(c, uri) {
		x.scratch = forwardPath(x.scratch[:0], c)
		x.rewrote = !bytes.Equal(x.scratch, uri)
	}
	if x.rewrote {
		x.origURI = append(x.origURI[:0], h.RequestURI()...)
		// Through the Request, not its header: that also drops a URI fasthttp parsed from the
		// previous target, which would otherwise outlive it (see restore).
		c.Request.SetRequestURIBytes(x.scratch)
	}
	x.noHost = len(h.Host()) == 0

	x.setForwarded(c, found)
	// A rewrite filter's Host, after X-Forwarded-Host took the client's.
	if t, ok := engine.UpstreamTargetKey.Get(c); ok && t != nil && t.Host != nil {
		x.origHost = append(x.origHost[:0], h.Host()...)
		x.hostSet = true
		h.SetHostBytes(t.Host)
		x.noHost = false
	}
	// No Content-Type where the client sent none: fasthttp would write application/octet-stream
	// for any request with a body.
	h.SetNoDefaultContentType(true)
	// One Content-Length whatever framing the client used (the server read the whole body,
	// de-chunked): nothing about the client's framing reaches the upstream. A streamed body
	// goes on with its declared length, or chunked when it has none (stream.go).
	x.streamed = c.Request.IsBodyStream()
	if x.streamed {
		h.SetContentLength(h.ContentLength())
	} else if body := c.Request.Body(); len(body) > 0 || !(h.IsGet() || h.IsHead()) {
		h.SetContentLength(len(body))
	}
}

// restore undoes what prepare must not leave behind for the client's connection.
func (x *exchange) restore(c *engine.Ctx) {
	h := &c.Request.Header
	if x.rewrote {
		// A URI parsed while the upstream's target was set (a tracer's client span reads it)
		// must not survive: response phases reading Request.URI or Request.RequestURI would
		// see the stripped target.
		c.Request.SetRequestURIBytes(x.origURI)
		x.rewrote = false
	}
	if x.hostSet {
		h.SetHostBytes(x.origHost)
		x.hostSet = false
	}
	if x.close {
		h.SetConnectionClose()
	}
}

// maxResponseConnTokens bounds the Connection tokens of an upstream response that are acted on.
const maxResponseConnTokens = 64

// allowedUpgrades appends to dst the elements of an Upgrade value that p allows, comma-separated.
func allowedUpgrades(dst, upgrade []byte, p *engine.Pipeline) []byte {
	for len(upgrade) > 0 {
		var item []byte
		if i := bytes.IndexByte(upgrade, ','); i >= 0 {
			item, upgrade = upgrade[:i], upgrade[i+1:]
		} else {
			item, upgrade = upgrade, nil
		}
		item = bytes.TrimSpace(item)
		if len(item) == 0 || !p.AllowsUpgrade(item) {
			continue
		}
		if len(dst) > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, item...)
	}
	return dst
}

// removeConnectionTokens deletes the headers named in a response's Connection value list, at
// most maxResponseConnTokens of them: each removal walks the header list.
func removeConnectionTokens(h interface{ DelBytes([]byte) }, list []byte) {
	for n := 0; len(list) > 0 && n < maxResponseConnTokens; n++ {
		i := bytes.IndexByte(list, ',')
		var tok []byte
		if i < 0 {
			tok, list = list, nil
		} else {
			tok, list = list[:i], list[i+1:]
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 && !ascii.EqualFoldLower(tok, "close") && !ascii.EqualFoldLower(tok, "keep-alive") {
			h.DelBytes(tok)
		}
	}
}

// setForwarded makes the X-Forwarded-For, -Proto and -Host lines and Via in x.fwd. The client's
// own values are kept only when the server's trusted_proxies vouched for them (c.ClientAddr then
// differs from the socket peer): X-Forwarded-For keeps the trusted part of the chain, from the
// client address on, and appends the socket peer. From an untrusted peer the chain restarts at
// that peer, so a client cannot forge the address upstreams see first. found is scanHop's mask
// of the client's request. Every value written comes from the parsed request or the gateway, so
// none can hold a line break.
func (x *exchange) setForwarded(c *engine.Ctx, found uint32) {
	h := &c.Request.Header
	peer := c.Peer
	trusted := peer.IsValid() && c.ClientAddr.IsValid() && c.ClientAddr != peer
	// From an untrusted peer, with no X-Forwarded-* of the client's to take out and no Forwarded
	// header to build, the block depends only on the peer, the scheme and Host: the same as the
	// last request's (a keep-alive connection's next, or another client's behind the same proxy)
	// is not built again (fwdmemo.go).
	plain := !trusted && found&(hasXFF|hasXFProto|hasXFHost) == 0 && !x.rfc7239
	tls := c.Fast != nil && c.Fast.IsTLS()
	if plain && x.fwdFrom.same(peer, tls, h.Host()) {
		return
	}
	x.fwdFrom.valid = false
	b := x.fwd[:0]

	line := len(b)
	b = append(b, "X-Forwarded-For: "...)
	value := len(b)
	if trusted && found&hasXFF != 0 {
		if chain := trustedChain(h.Peek(hdrXFF), c.ClientAddr); len(chain) > 0 {
			b = append(append(b, chain...), ", "...)
		}
	}
	if peer.IsValid() {
		b = c.AppendPeer(b)
	}
	if len(b) == value {
		b = b[:line]
	} else {
		b = append(b, "\r\n"...)
	}
	// Del removes every copy (Set would replace only the first of repeated headers), and only
	// when the client sent one.
	if found&hasXFF != 0 {
		h.Del(hdrXFF)
	}

	if !(trusted && found&hasXFProto != 0 && len(h.Peek(hdrXFProto)) > 0) {
		if found&hasXFProto != 0 {
			h.Del(hdrXFProto)
		}
		if tls {
			b = append(b, "X-Forwarded-Proto: https\r\n"...)
		} else {
			b = append(b, "X-Forwarded-Proto: http\r\n"...)
		}
	}
	if !(trusted && found&hasXFHost != 0 && len(h.Peek(hdrXFHost)) > 0) {
		if found&hasXFHost != 0 {
			h.Del(hdrXFHost)
		}
		if host := h.Host(); len(host) > 0 {
			b = append(append(append(b, "X-Forwarded-Host: "...), host...), "\r\n"...)
		}
	}
	if x.rfc7239 {
		b = appendForwarded(b, c)
	}
	x.fwd = append(b, "Via: 1.1 sluice\r\n"...)
	if plain {
		x.fwdFrom.set(peer, tls, h.Host())
	}
}

var hdrForwarded = []byte("Forwarded")

// appendForwarded appends a Forwarded line (RFC 7239) for the server's forwarded_header: the
// elements of the request's own Forwarded header, if it still has one (the server removes it
// from peers outside trusted_proxies, unless untrusted_headers leaves it out), then this hop's:
// for= the socket peer, proto=, and host= the Host header.
func appendForwarded(b []byte, c *engine.Ctx) []byte {
	h := &c.Request.Header
	b = append(b, "Forwarded: "...)
	if prev := h.PeekBytes(hdrForwarded); len(prev) > 0 {
		b = append(append(b, prev...), ", "...)
		h.DelBytes(hdrForwarded) // after the copy: prev is the header's memory
	}
	if c.Peer.IsValid() {
		b = append(b, "for="...)
		if c.Peer.Is6() {
			// An IPv6 address is quoted and bracketed: ':' is not a token character.
			b = append(c.AppendPeer(append(b, `"[`...)), `]"`...)
		} else {
			b = c.AppendPeer(b)
		}
		b = append(b, ';')
	}
	if c.Fast != nil && c.Fast.IsTLS() {
		b = append(b, "proto=https"...)
	} else {
		b = append(b, "proto=http"...)
	}
	if host := h.Host(); len(host) > 0 {
		b = append(b, `;host="`...)
		for _, ch := range host {
			if ch == '"' || ch == '\\' {
				b = append(b, '\\')
			}
			b = append(b, ch)
		}
		b = append(b, '"')
	}
	return append(b, "\r\n"...)
}

// trustedChain returns the suffix of an X-Forwarded-For list that starts at the rightmost entry
// equal to client: the hops the trusted proxies vouch for.
func trustedChain(xff []byte, client netip.Addr) []byte {
	end := len(xff)
	for end > 0 {
		i := bytes.LastIndexByte(xff[:end], ',')
		hop := bytes.TrimSpace(xff[i+1 : end])
		if a, err := netip.ParseAddr(string(hop)); err == nil && a.Unmap() == client {
			return bytes.TrimSpace(xff[i+1:])
		}
		if i < 0 {
			break
		}
		end = i
	}
	return nil
}

// forwardPath appends the path and query the upstream receives: the client's raw, still
// percent-encoded path minus the pipeline's strip_prefix. When the raw path has dot segments or
// repeated slashes, it could mean something else to the upstream than the normalized path the
// gateway routed on, so the normalized path (which keeps escapes such as %2F) is sent instead.
//
// A rewrite filter's UpstreamTarget replaces the path (strip_prefix then does not apply: the
// rewrite already produced the path the upstream gets) and/or the query.
func forwardPath(dst []byte, c *engine.Ctx) []byte {
	raw, query := engine.RawPath(c.Request)
	if t, ok := engine.UpstreamTargetKey.Get(c); ok && t != nil {
		if t.QuerySet {
			query = t.Query
		}
		if t.Path != nil {
			dst = append(dst, t.Path...)
			if len(query) > 0 {
				dst = append(append(dst, '?'), query...)
			}
			return dst
		}
	}
	path := raw
	if len(path) == 0 || path[0] != '/' || !cleanPath(path) {
		path = c.Path
	}
	strip := ""
	if c.Pipeline != nil {
		strip = c.Pipeline.StripPrefix
	}
	if strip != "" {
		p, ok := stripPrefix(path, strip)
		if !ok && len(c.Path) > 0 {
			// The raw path spells the prefix differently (%76 for v): strip it from the
			// normalized path, which matched the pipeline.
			p, ok = stripPrefix(c.Path, strip)
		}
		if ok {
			path = p
		}
	}
	if len(path) == 0 || path[0] != '/' {
		dst = append(dst, '/')
	}
	dst = append(dst, path...)
	if len(query) > 0 {
		dst = append(dst, '?')
		dst = append(dst, query...)
	}
	return dst
}

// targetKept reports, for most requests and without building it, that forwardPath would give
// back the client's request-target unchanged: an origin-form target whose path is the path the
// gateway routed on (either branch of forwardPath's cleanPath test then sends those bytes), a
// query, if any, that is not empty, no fragment and no strip_prefix. RawPath, cleanPath and the
// copy compared with the target were about 250 instructions per request. A rewrite's
// UpstreamTarget counts the same way: its path (sent verbatim, without strip_prefix) in place of
// the routed one, its query in place of the client's; a Host-only rewrite keeps the target.
func targetKept(c *engine.Ctx, uri []byte) bool {
	t, _ := engine.UpstreamTargetKey.Get(c)
	path := c.Path
	if t != nil && t.Path != nil {
		path = t.Path
	} else if len(path) == 0 || path[0] != '/' || (len(path) > 1 && path[1] == '/') ||
		c.Pipeline != nil && c.Pipeline.StripPrefix != "" {
		return false
	}
	// RawPath splits such a target in place: its path ends at the first '?'.
	if len(uri) < len(path) || len(uri) == 0 || uri[0] != '/' || (len(uri) > 1 && uri[1] == '/') ||
		string(uri[:len(path)]) != string(path) || bytes.IndexByte(uri, '#') >= 0 {
		return false
	}
	q := bytes.IndexByte(uri, '?')
	if q >= 0 && q != len(path) || q < 0 && len(uri) != len(path) {
		return false // a '?' in the path, or more than the path and no query
	}
	if t != nil && t.QuerySet {
		// The rewrite's query is sent in place of the client's (none when empty).
		if len(t.Query) == 0 {
			return q < 0
		}
		return q >= 0 && string(uri[q+1:]) == string(t.Query)
	}
	return q < 0 || q+1 < len(uri) // an empty query forwardPath drops
}

// stripPrefix removes prefix from path at a segment boundary.
func stripPrefix(path []byte, prefix string) ([]byte, bool) {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return path, false
	}
	rest := path[len(prefix):]
	if len(rest) > 0 && rest[0] != '/' && prefix[len(prefix)-1] != '/' {
		return path, false // "/v1" is not a prefix of "/v10/x"
	}
	return rest, true
}

// cleanPath reports whether a raw path has no empty, "." or ".." segments (also written with
// percent-encoded dots).
func cleanPath(p []byte) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		seg := p[i+1:]
		if j := bytes.IndexByte(seg, '/'); j >= 0 {
			seg = seg[:j]
		}
		if len(seg) == 0 && i+1 < len(p) {
			return false
		}
		if isDots(seg) {
			return false
		}
	}
	return true
}

func isDots(seg []byte) bool {
	n := 0
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case i+2 < len(seg)+0 && seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return false
		}
		n++
	}
	return n == 1 || n == 2
}

// failure classifies why an attempt got no response.
type failure uint8

const (
	failNone    failure = iota
	failConnect         // the request was never sent: dial, TLS handshake, no free connection
	failReset           // the connection broke after (part of) the request was sent
	failTimeout         // no response within the attempt's deadline
	failClient          // the client's streamed body failed (stream.go): not the target's doing
)

// dialError marks an error that happened before anything was written to the upstream.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connecting: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

var errNoFreeConns = errors.New("max_connections_per_target reached")

func classify(err error) failure {
	if err == nil {
		return failNone
	}
	var ce *clientBodyError
	if errors.As(err, &ce) {
		return failClient
	}
	var de *dialError
	if errors.As(err, &de) || errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, errNoFreeConns) {
		return failConnect
	}
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return failTimeout
	}
	return failReset
}

// failStatus is the status the client gets for a failed attempt.
func failStatus(f failure, err error) int {
	switch f {
	case failClient:
		return engine.BodyErrorStatus(err)
	case failTimeout:
		return fasthttp.StatusGatewayTimeout
	case failConnect:
		if errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, errNoFreeConns) || errors.Is(err, errCircuitOpen) {
			return fasthttp.StatusServiceUnavailable
		}
	}
	return fasthttp.StatusBadGateway
}

// dialer opens connections to one target: TCP with the connect timeout, then TLS when the target
// has tls = true. Every failure is a *dialError, so the balancer knows nothing was sent.
type dialer struct {
	connect time.Duration
	tls     *tls.Config
}

func (d *dialer) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > d.connect {
		timeout = d.connect
	}
	deadline := time.Now().Add(timeout)
	nd := net.Dialer{Deadline: deadline}
	conn, err := nd.Dial("tcp", addr)
	if err != nil {
		return nil, &dialError{err}
	}
	if d.tls == nil {
		return conn, nil
	}
	tc := tls.Client(conn, d.tls)
	if err := tc.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, &dialError{err}
	}
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, &dialError{&tlsHandshakeError{err}} // reasons.go
	}
	if err := tc.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, &dialError{err}
	}
	return tc, nil
}

// finishResponse removes the upstream's hop-by-hop headers from the response read into
// c.Response, drops its status line's version and reason phrase, and adds Via.
func finishResponse(c *engine.Ctx, x *exchange) {
	h := &c.Response.Header
	// The status line the client gets is Sluice's own: its HTTP version (RFC 9110 section 6.2:
	// an HTTP/1.0 upstream must not make a keep-alive client think the gateway is 1.0) and the
	// standard reason phrase of whatever status the response phase leaves (a filter that turns
	// the upstream's 200 into a 404 must not send "404 OK"; RFC 9112 section 4: clients ignore
	// the phrase, and HTTP/2 has none). With both empty fasthttp writes a precomputed line.
	h.SetProtocol(nil)
	h.SetStatusMessage(nil)
	var hop uint32
	x.conn, hop = scanResponseHop(h, x.conn[:0]) // scanresp.go
	removeConnectionTokens(h, x.conn)
	removeHop(h, hop)
	h.ResetConnectionClose()
	if hop&hasVia != 0 {
		h.AddBytesV(hdrVia, viaValue) // after the upstream's own Via: the list grows
	} else {
		// Nothing to add to or replace: append the field prepared once. AddBytesV copied and
		// normalized the name on every response (about 510 instructions per request under
		// callgrind), SetCanonical still copied and scanned the value, dispatched on the name and
		// looked for an existing field (339); AddTo appends to fasthttp's list (about 60).
		viaField.AddTo(h)
	}
}

// viaField is the response's Via field, normalised and checked once (engine.ResponseField).
var viaField = engine.NewResponseField(hdrVia, string(viaValue))

// copyTrailers announces in dst the trailers src received and copies their values.
func copyTrailers(dst, src *fasthttp.ResponseHeader) {
	for name := range src.Trailers() {
		vals := src.PeekAll(string(name)) // allocates, only for a response that has trailers
		if len(vals) == 0 || dst.AddTrailerBytes(name) != nil {
			continue // announced but not sent, or a name that may not be a trailer
		}
		for _, v := range vals {
			dst.AddBytesKV(name, v)
		}
	}
}

// announceTrailers announces in dst, before its body streams, the trailers the upstream
// announced in src; their values follow at the body's end (upstreamBody.Read).
func announceTrailers(dst, src *fasthttp.ResponseHeader) {
	for name := range src.Trailers() {
		_ = dst.AddTrailerBytes(name) // a name that may not be a trailer is left out
	}
}

// holdOrStream settles a body roundTrip left on the connection (chunked, unframed or larger than
// maxHeld): one that turns out to fit in maxHeld bytes is read into c.Response (later filters may
// read or rewrite it); a larger one is streamed to the client, and owns the connection until the
// server has written it. It reports whether the body is streamed.
func holdOrStream(c *engine.Ctx, body *upstreamBody, maxHeld int, x *exchange, liveAll bool) (streamed bool, err error) {
	dst := c.Response
	cl := dst.Header.ContentLength()
	// A live response goes to the client as it arrives, each chunk flushed: a stream of
	// messages an HTTP/2 target sent (gRPC, server-sent events: body.immediate), or one of
	// unknown length that is server-sent events or that the upstream or the upstream block asks
	// not to buffer (liveResponse, which also removes X-Accel-Buffering).
	live := cl < 0 && !body.fits && liveResponse(&dst.Header, liveAll)
	if live || body.immediate {
		x.live = true
		// Its trailers are announced now (an HTTP/2 client's writer declares them before the
		// body); their values follow at the body's end.
		announceTrailers(&dst.Header, &body.up.Header)
		body.trailersTo = &dst.Header
		body.streaming = true
		dst.SetBodyStream(body, -1)
		dst.ImmediateHeaderFlush = true
		return true, nil
	}
	if cl >= 0 {
		// Known length: too large to hold, or the held-response budget had no room for it.
		body.streaming = true
		dst.SetBodyStream(body, cl)
		// A body of known length has no trailers: nothing to pass on.
		return true, nil
	}
	// Read up to maxHeld+1 bytes to learn whether the body fits, reserving room in the
	// held-response budget as the body grows.
	b := x.scratch[:0]
	limit := maxHeld + 1
	reserved := 0
	x.overBudget = false
	for len(b) < limit {
		if len(b) >= reserved {
			step := min(max(reserved, heldReserveStep), limit-reserved)
			if x.holdRefused(c, reserved+step) {
				break // stream what was read, then the rest as it comes
			}
			reserved += step
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := min(cap(b), reserved)
		n, rerr := body.Read(b[len(b):end])
		b = b[:len(b)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			x.scratch = b[:0]
			_ = body.Close()
			return false, rerr
		}
	}
	if len(b) > maxHeld || x.overBudget {
		// Larger than we hold, or over the budget: send what was read, then the rest as it
		// comes.
		prefix := b // now the stream's: the exchange gets a fresh buffer
		x.scratch = nil
		body.r = io.MultiReader(bytes.NewReader(prefix), body.r)
		announceTrailers(&dst.Header, &body.up.Header)
		body.trailersTo = &dst.Header
		body.streaming = true
		dst.SetBodyStream(body, cl)
		return true, nil
	}
	// The body was read to its end, trailer section included: keep the trailers (fasthttp sends
	// them after the held body, chunked, to an HTTP/1.1 client).
	copyTrailers(&dst.Header, &body.up.Header)
	if err := body.Close(); err != nil {
		x.scratch = b[:0]
		return false, err
	}
	// Hand the bytes to the client response and keep its old buffer as scratch: no copy.
	x.scratch = dst.SwapBody(b)[:0]
	return false, nil
}

// heldReserveStep is the least room reserved at a time in the held-response budget while a body
// of unknown length is read (the first step, up to engine.HeldUncounted, is not counted); the
// steps double with the body.
const heldReserveStep = engine.HeldUncounted

// holdRefused asks the server's held-response budget for room for the response's body to reach
// total bytes (from the reservations already made, total - what is held so far, is new); it
// reports a refusal, remembered in x.overBudget.
func (x *exchange) holdRefused(c *engine.Ctx, total int) bool {
	if total <= engine.HeldUncounted || total <= x.held {
		return false // small responses are not counted (engine.HoldResponse)
	}
	if !c.HoldResponse(total - x.held) {
		x.overBudget = true
		return true
	}
	x.held = total
	return false
}
