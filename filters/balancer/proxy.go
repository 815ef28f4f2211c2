package balancer

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// The hop-by-hop headers of RFC 9110 §7.6.1 (and the de-facto Keep-Alive and Proxy-Connection)
// describe one connection and are never forwarded. fasthttp keeps Connection, Transfer-Encoding
// and Trailer outside its plain header list, so those are always deleted; the plain ones are
// found in the one pass that also collects the Connection tokens, and deleted only when present
// (each Del re-normalizes its name and walks the list: 0.1 µs apiece on the hot path).
var (
	specialHopHeaders = []string{"Connection", "Transfer-Encoding", "Trailer"}
	plainHopHeaders   = []string{"Keep-Alive", "Proxy-Connection", "TE", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"}
)

// scanHop reads a header list once: it appends the values of Connection headers (comma-ended)
// to conn and reports which plainHopHeaders are present, as a bit mask.
func scanHop(all func(func(k, v []byte) bool), conn []byte) ([]byte, uint8) {
	var mask uint8
	all(func(k, v []byte) bool {
		if bytes.EqualFold(k, hdrConnection) {
			conn = append(append(conn, v...), ',')
			return true
		}
		for i, h := range plainHopHeaders {
			if len(k) == len(h) && bytes.EqualFold(k, []byte(h)) {
				mask |= 1 << i
			}
		}
		return true
	})
	return conn, mask
}

// removeHop deletes the hop-by-hop headers scanHop found, and the special ones.
func removeHop(h interface{ Del(string) }, mask uint8) {
	for _, name := range specialHopHeaders {
		h.Del(name)
	}
	for i, name := range plainHopHeaders {
		if mask&(1<<i) != 0 {
			h.Del(name)
		}
	}
}

var (
	hdrConnection = []byte("Connection")
	hdrXFF        = "X-Forwarded-For"
	hdrXFProto    = "X-Forwarded-Proto"
	hdrXFHost     = "X-Forwarded-Host"
	hdrVia        = "Via"
	viaValue      = []byte("1.1 sluice")
	schemeHTTP    = []byte("http")
	schemeHTTPS   = []byte("https")
)

// exchange is the pooled per-request state of one proxied request: the request as forwarded
// (built once, replayed on each retry) and scratch space, so the request path does not allocate.
type exchange struct {
	req     fasthttp.Request
	scratch []byte
	conn    []byte // the values of the client's Connection headers
	tried   [maxRetryAttempts + 1]int
	ntried  int
	noHost  bool // the client sent no Host header
}

const maxPooledScratch = 256 << 10

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func acquireExchange() *exchange { return exchangePool.Get().(*exchange) }

func releaseExchange(x *exchange) {
	// Drop the reference to the client's body (SetBodyRaw shares it) before pooling.
	x.req.Reset()
	x.ntried = 0
	// Don't keep a large response body's buffer alive in the pool.
	if cap(x.scratch) > maxPooledScratch {
		x.scratch = nil
	}
	exchangePool.Put(x)
}

// prepare builds the upstream request from the client's: the raw path minus strip_prefix, the
// headers without hop-by-hop ones, X-Forwarded-*, Via, and the client's body (shared, not
// copied: it stays valid for the whole request, so retries replay it).
func (x *exchange) prepare(c *engine.Ctx) {
	out := &x.req
	in := c.Request
	in.Header.CopyTo(&out.Header)
	// The client's Connection header lists further hop-by-hop headers: collect its values before
	// deleting anything (fasthttp keeps "close" as a flag, the other tokens as a header).
	var hop uint8
	x.conn, hop = scanHop(in.Header.All(), x.conn[:0])
	removeConnectionTokens(&out.Header, x.conn)
	removeHop(&out.Header, hop)
	// Keep-alive to the upstream whatever the client asked for its own connection.
	out.Header.ResetConnectionClose()
	// The server already read the whole body (answering any 100-continue itself).
	out.Header.Del("Expect")

	x.scratch = forwardPath(x.scratch[:0], c)
	out.Header.SetRequestURIBytes(x.scratch)
	out.UseHostHeader = true
	x.noHost = len(out.Header.Host()) == 0

	x.setForwarded(c)
	out.Header.AddBytesV(hdrVia, viaValue)
	if body := in.Body(); len(body) > 0 {
		out.SetBodyRaw(body)
	}
}

// removeConnectionTokens deletes every header named in a Connection value list.
func removeConnectionTokens(h interface{ DelBytes([]byte) }, list []byte) {
	for len(list) > 0 {
		i := bytes.IndexByte(list, ',')
		var tok []byte
		if i < 0 {
			tok, list = list, nil
		} else {
			tok, list = list[:i], list[i+1:]
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 && !bytes.EqualFold(tok, []byte("close")) && !bytes.EqualFold(tok, []byte("keep-alive")) {
			h.DelBytes(tok)
		}
	}
}

// setForwarded sets X-Forwarded-For, -Proto and -Host. The client's own values are kept only
// when the server's trusted_proxies vouched for them (c.ClientAddr then differs from the socket
// peer): X-Forwarded-For keeps the trusted part of the chain, from the client address on, and
// appends the socket peer. From an untrusted peer the chain restarts at that peer, so a client
// cannot forge the address upstreams see first.
func (x *exchange) setForwarded(c *engine.Ctx) {
	out := &x.req.Header
	peer := c.Peer
	trusted := peer.IsValid() && c.ClientAddr.IsValid() && c.ClientAddr != peer
	b := x.scratch[:0]
	if trusted {
		b = append(b, trustedChain(c.Request.Header.Peek(hdrXFF), c.ClientAddr)...)
		if len(b) > 0 {
			b = append(b, ", "...)
		}
	}
	if peer.IsValid() {
		b = peer.AppendTo(b)
	}
	out.Del(hdrXFF)
	if len(b) > 0 {
		out.SetBytesV(hdrXFF, b)
	}
	x.scratch = b

	// SetBytesV replaces only the first of repeated headers: an untrusted client's extra copies
	// must go first, or a second X-Forwarded-Proto/-Host would reach the upstream.
	if !trusted {
		out.Del(hdrXFProto)
		out.Del(hdrXFHost)
	}
	if !trusted || len(out.Peek(hdrXFProto)) == 0 {
		if c.Fast != nil && c.Fast.IsTLS() {
			out.SetBytesV(hdrXFProto, schemeHTTPS)
		} else {
			out.SetBytesV(hdrXFProto, schemeHTTP)
		}
	}
	if !trusted || len(out.Peek(hdrXFHost)) == 0 {
		out.SetBytesV(hdrXFHost, c.Request.Header.Host())
	}
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
func forwardPath(dst []byte, c *engine.Ctx) []byte {
	u := c.Request.URI()
	raw := u.PathOriginal()
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
	if q := u.QueryString(); len(q) > 0 {
		dst = append(dst, '?')
		dst = append(dst, q...)
	}
	return dst
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
	case failTimeout:
		return fasthttp.StatusGatewayTimeout
	case failConnect:
		if errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, errNoFreeConns) {
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
		return nil, &dialError{fmt.Errorf("TLS handshake: %w", err)}
	}
	if err := tc.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, &dialError{err}
	}
	return tc, nil
}

// copyResponse moves the upstream response into the client's, without hop-by-hop headers. A body
// up to maxHeld bytes is held (later filters may read or rewrite it); a larger one is streamed to
// the client and up is then owned by the stream (released when the server has written it).
// It reports whether up is still the caller's to release.
func copyResponse(c *engine.Ctx, up *fasthttp.Response, maxHeld int, x *exchange) (owned bool, err error) {
	dst := c.Response
	dst.Reset()
	up.Header.CopyTo(&dst.Header)
	var hop uint8
	x.conn, hop = scanHop(up.Header.All(), x.conn[:0])
	removeConnectionTokens(&dst.Header, x.conn)
	removeHop(&dst.Header, hop)
	dst.Header.ResetConnectionClose()
	dst.Header.AddBytesV(hdrVia, viaValue)

	stream := up.BodyStream()
	if stream == nil {
		// No body (HEAD, 204, 304) or already held.
		swapBody(dst, up)
		return true, nil
	}
	cl := up.Header.ContentLength()
	if cl > maxHeld {
		dst.SetBodyStream(&streamedBody{r: stream, up: up}, cl)
		return false, nil
	}
	// Read up to maxHeld+1 bytes to learn whether the body fits.
	b := x.scratch[:0]
	if cl > 0 && cap(b) < cl {
		b = make([]byte, 0, cl)
	}
	limit := maxHeld + 1
	for len(b) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := min(cap(b), limit)
		n, rerr := stream.Read(b[len(b):end])
		b = b[:len(b)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			x.scratch = b[:0]
			_ = up.CloseBodyStream()
			return true, rerr
		}
	}
	if len(b) > maxHeld {
		// Larger than we hold: send what was read, then the rest as it comes.
		prefix := b // now the stream's: the exchange gets a fresh buffer
		x.scratch = nil
		dst.SetBodyStream(&streamedBody{r: io.MultiReader(bytes.NewReader(prefix), stream), up: up}, cl)
		return false, nil
	}
	if err := up.CloseBodyStream(); err != nil {
		x.scratch = b[:0]
		return true, err
	}
	// Hand the bytes to the client response and keep its old buffer as scratch: no copy.
	x.scratch = dst.SwapBody(b)[:0]
	return true, nil
}

// swapBody moves a held upstream body into dst without copying.
func swapBody(dst, up *fasthttp.Response) {
	if body := up.Body(); len(body) > 0 {
		old := dst.SwapBody(body)
		up.SwapBody(old[:0])
	}
}

// streamedBody is an upstream body streamed to the client; closing it returns the upstream
// connection (or closes it, if unread) and the pooled response.
type streamedBody struct {
	r  io.Reader
	up *fasthttp.Response
}

func (s *streamedBody) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *streamedBody) Close() error {
	err := s.up.CloseBodyStream()
	fasthttp.ReleaseResponse(s.up)
	return err
}
