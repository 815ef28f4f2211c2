package engine

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// Admission: what the gateway checks and canonicalises before routing, so that the pipeline it
// picks is the one whose rules cover what the upstream will act on. Every check here reads a few
// bytes fasthttp already parsed; the rare requests that need more (an absolute-form target, an
// escaped slash) pay for it themselves.

// SlashAction is what the server does with a request path holding an escaped slash or
// backslash (%2F, %5C, or a bare \), the server's escaped_slashes setting. Many upstreams
// decode %2F and then see a path other than the one the gateway routed on.
type SlashAction uint8

const (
	SlashReject   SlashAction = iota // 400 (the default)
	SlashRedirect                    // 307 to the unescaped, normalized path
	SlashUnescape                    // route and forward the unescaped, normalized path
	SlashKeep                        // route with %2F as a byte of its segment, forward the raw path
)

// ParseSlashAction parses an escaped_slashes value ("" is the default, "reject").
func ParseSlashAction(s string) (SlashAction, error) {
	switch s {
	case "", "reject":
		return SlashReject, nil
	case "redirect":
		return SlashRedirect, nil
	case "unescape":
		return SlashUnescape, nil
	case "keep":
		return SlashKeep, nil
	}
	return 0, fmt.Errorf("unknown value %q: use \"reject\", \"redirect\", \"unescape\" or \"keep\"", s)
}

// allowedMethods answers OPTIONS * and goes with the 405 for CONNECT (RFC 9110 §15.5.6 wants an
// Allow header with every 405). Pipelines may narrow it with their methods lists.
var allowedMethods = []byte("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")

var (
	hdrAllow    = []byte("Allow")
	hdrLocation = []byte("Location")
	http11      = []byte("HTTP/1.1")
)

// admit checks the request before it is routed: framing, header names, the HTTP version, the
// method and form of the request-target, the host and the path's escaped slashes. It answers a
// request that goes no further itself and returns false. memo, when not nil, is the HTTP/1
// connection's last canonical Host (hostmemo.go); HTTP/2 streams, served concurrently, pass nil.
func (s *Server) admit(fc *fasthttp.RequestCtx, memo *hostMemo) bool {
	h := &fc.Request.Header
	raw := h.RawHeaders()
	// fasthttp marks a request with both framing headers to close its connection (RFC 9112 §6.3),
	// so a keep-alive request, most of them, skips the scan (TestSmugglingAndMalformedRequests
	// would catch a fasthttp that stopped doing so).
	if h.ConnectionClose() && conflictingFraming(raw) {
		return s.refuse(fc, fasthttp.StatusBadRequest, reasonFraming)
	}
	if !validHeaderBlock(raw) {
		return s.refuse(fc, fasthttp.StatusBadRequest, reasonHeaderBlock)
	}
	if !h.IsHTTP11() {
		// fasthttp accepted only "HTTP/d.d" here. A major version other than 1 on an HTTP/1
		// connection is HTTP/2 or /3 framing this server cannot speak (HTTP/1.x with x > 1 is
		// HTTP/1.1 already: headerReceived).
		proto := h.Protocol()
		if proto[5] != '1' {
			return s.refuse(fc, fasthttp.StatusHTTPVersionNotSupported, reasonVersion)
		}
	}
	if h.IsConnect() {
		// A reverse proxy is not a forward proxy: no tunnels to wherever the client names.
		s.refuse(fc, fasthttp.StatusMethodNotAllowed, reasonConnect)
		fc.Response.Header.SetBytesKV(hdrAllow, allowedMethods)
		return false
	}
	target := h.RequestURI()
	if len(target) > 0 && target[0] != '/' && target[0] != '*' {
		// Absolute-form (fasthttp admits no other form here but "*"): the target's authority
		// is the host (RFC 9112 §3.2.2), whatever Host says. The request goes on in
		// origin-form with that authority as its Host, so routing, filters and the upstream all
		// see one host.
		authority, rest, ok := splitAbsolute(target)
		if !ok || len(authority) == 0 {
			return s.refuse(fc, fasthttp.StatusBadRequest, reasonHost)
		}
		var buf [maxAuthority]byte
		canon, ok := canonicalHost(buf[:0], authority)
		if !ok {
			return s.refuse(fc, fasthttp.StatusBadRequest, reasonHost)
		}
		h.SetHostBytes(canon)
		if i := bytes.IndexByte(rest, '#'); i >= 0 {
			rest = rest[:i] // a fragment is not sent (RFC 9110 §4.2.5); the split path ignores it too
		}
		if len(rest) == 0 || rest[0] != '/' {
			rest = append(append(buf[:0], '/'), rest...) // Host has its copy of canon
		}
		fc.Request.SetRequestURIBytes(rest)
	} else if host := h.Host(); len(host) > 0 && !memo.is(host) {
		var buf [maxAuthority]byte
		canon, ok := canonicalHost(buf[:0], host)
		if !ok {
			return s.refuse(fc, fasthttp.StatusBadRequest, reasonHost)
		}
		if !bytes.Equal(canon, host) {
			h.SetHostBytes(canon)
		} else {
			memo.set(host)
		}
	}
	if len(target) == 1 && target[0] == '*' {
		// OPTIONS * (fasthttp admits "*" with no other method) asks about the server, which is
		// the gateway: it answers, no pipeline is involved (see RATIONALE.md).
		fc.Response.Header.SetBytesKV(hdrAllow, allowedMethods)
		fc.Response.SetStatusCode(fasthttp.StatusOK)
		return false
	}
	// One split of the request-target serves both path checks (it was about 110 instructions).
	path, query := RawPath(&fc.Request)
	if dotParamSegment(path) {
		return s.refuse(fc, fasthttp.StatusBadRequest, reasonDotParam)
	}
	if s.slashes == SlashReject || s.slashes == SlashRedirect {
		if !hasEscapedSlash(path) {
			return true
		}
		if s.slashes == SlashReject {
			return s.refuse(fc, fasthttp.StatusBadRequest, reasonEscapedSlash)
		}
		// The Location is the path this gateway would route on after unescaping: it starts
		// with one "/" (never "//", which a browser would read as another host).
		loc := unescapedPath(nil, path)
		if len(query) > 0 {
			loc = append(append(loc, '?'), query...)
		}
		fc.Response.SetStatusCode(fasthttp.StatusTemporaryRedirect)
		fc.Response.Header.SetBytesKV(hdrLocation, loc)
		return false
	}
	return true
}

// dotParamSegment reports whether p has a dot segment with a path parameter ("/..;/",
// "/..;jsessionid=1/", "/.;/", a dot also written %2e). Servlet containers such as Tomcat drop a
// segment's parameters before they resolve dot segments, so to them "/open/..;/admin" is
// "/admin", while the router, for which ";" is an ordinary byte, sees a segment under "/open/":
// the known way past a gateway's rule on "/admin/". No real path has such a segment.
func dotParamSegment(p []byte) bool {
	for i := bytes.IndexByte(p, ';'); i >= 0; {
		seg := p[bytes.LastIndexByte(p[:i], '/')+1 : i]
		if dots := dotCount(seg); dots == 1 || dots == 2 {
			return true
		}
		j := bytes.IndexByte(p[i+1:], ';')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// dotCount returns how many dots seg is made of ("." or "%2e" each), or -1 if it holds anything
// else.
func dotCount(seg []byte) int {
	n := 0
	for k := 0; k < len(seg); n++ {
		switch {
		case seg[k] == '.':
			k++
		case k+2 < len(seg) && seg[k] == '%' && seg[k+1] == '2' && seg[k+2]|0x20 == 'e':
			k += 3
		default:
			return -1
		}
	}
	return n
}

// headerReceived runs as soon as fasthttp has read a request's header, before it decides
// whether the connection persists: HTTP/1.x with x > 1 is HTTP/1.1 (RFC 9110 §6.2), which keeps
// its connection unless asked to close (fasthttp took any version but 1.1 for 1.0).
func headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if !h.IsHTTP11() {
		if proto := h.Protocol(); proto[5] == '1' && proto[7] > '1' {
			h.SetProtocolBytes(http11)
			if h.ConnectionClose() && !closeRequested(h.RawHeaders()) {
				h.ResetConnectionClose()
			}
		}
	}
	return fasthttp.RequestConfig{} // the server's own limits
}

// refuse answers fc with status and closes the connection: what follows a request the gateway
// refuses cannot be trusted to be the next request. The refusal is counted and logged with its
// reason (refusals.go; handle counts every request admit answers). It returns false, for admit
// to return.
func (s *Server) refuse(fc *fasthttp.RequestCtx, status int, reason string) bool {
	s.refused(fc, nil, status, reason, false)
	WriteError(&fc.Response, status)
	fc.SetConnectionClose()
	return false
}

// routingPath returns the normalized path the request is routed on, appended to dst. With
// escaped_slashes = "unescape", a path with an escaped slash is unescaped and normalized, and the
// request-target becomes that path (and the raw query), so the upstream gets what the gateway
// routed on.
func (s *Server) routingPath(dst []byte, r *fasthttp.Request) []byte {
	raw, query := RawPath(r)
	if s.slashes != SlashUnescape || !hasEscapedSlash(raw) {
		return NormalizePath(dst, raw)
	}
	dst = unescapedPath(dst, raw)
	path := len(dst)
	if len(query) > 0 {
		dst = append(append(dst, '?'), query...)
	}
	r.SetRequestURIBytes(dst)
	return dst[:path]
}

// unescapedPath appends the normalized form of raw to dst with every escaped slash and
// backslash (%2F, %5C, \) turned into a separator, so "/x/..%2Fadmin" is "/admin". It allocates
// only when dst is too small.
func unescapedPath(dst, raw []byte) []byte {
	start := len(dst)
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' {
			dst = append(dst, '/')
			continue
		}
		if raw[i] == '%' && i+2 < len(raw) && isEscapedSlash(raw[i+1], raw[i+2]) {
			dst = append(dst, '/')
			i += 2
			continue
		}
		dst = append(dst, raw[i])
	}
	// Normalize the unescaped copy into the space after it, then move the result to the front.
	mid := len(dst)
	dst = NormalizePath(dst, dst[start:mid])
	n := copy(dst[start:], dst[mid:])
	return dst[:start+n]
}

// hasEscapedSlash reports whether a raw path holds %2F, %5C (either case) or a backslash.
func hasEscapedSlash(p []byte) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			return true
		case '%':
			if i+2 < len(p) && isEscapedSlash(p[i+1], p[i+2]) {
				return true
			}
		}
	}
	return false
}

func isEscapedSlash(a, b byte) bool {
	return (a == '2' && (b == 'F' || b == 'f')) || (a == '5' && (b == 'C' || b == 'c'))
}

// splitAbsolute splits an absolute-form request-target ("http://authority/path?query") into
// its authority and the rest; ok is false for a scheme other than http and https.
func splitAbsolute(target []byte) (authority, rest []byte, ok bool) {
	i := bytes.Index(target, []byte("://"))
	if i < 0 {
		return nil, nil, false
	}
	if scheme := target[:i]; !ascii.EqualFoldLower(scheme, "http") && !ascii.EqualFoldLower(scheme, "https") {
		return nil, nil, false
	}
	authority = target[i+3:]
	end := len(authority)
	for j, b := range authority {
		if b == '/' || b == '?' || b == '#' {
			end = j
			break
		}
	}
	return authority[:end], authority[end:], true
}

// maxAuthority bounds a host with its port: 253 bytes of name, a trailing dot and ":65535".
const maxAuthority = 253 + 1 + 6

// canonicalHost returns the canonical form of a Host value or an absolute-form target's
// authority: lower-case, without a trailing dot, with its port (if any, and not empty). It is in
// itself when that is canonical already (nearly always), else appended to dst. ok is false for
// anything but a DNS name (letters, digits and hyphens in non-empty labels of at most 63 bytes,
// at most 253 bytes in all) or an IP literal ([v6] in brackets), with an optional port: that
// refuses userinfo, commas, bytes ≥ 0x80, empty labels and the like, which RFC 3986's reg-name
// would allow but upstreams read each their own way. With dst of capacity maxAuthority it does
// not allocate (an IPv6 literal is checked by netip, which may).
func canonicalHost(dst, in []byte) (_ []byte, ok bool) {
	if len(in) == 0 || len(in) > maxAuthority {
		return in, len(in) == 0
	}
	host, port := in, []byte(nil)
	hasPort, changed := false, false
	if in[0] == '[' {
		end := bytes.IndexByte(in, ']')
		if end < 0 || !validIPv6(in[1:end]) {
			return nil, false
		}
		host = in[:end+1]
		if rest := in[end+1:]; len(rest) > 0 {
			if rest[0] != ':' {
				return nil, false
			}
			port, hasPort = rest[1:], true
		}
		for _, b := range host {
			changed = changed || lowerASCII(b) != b
		}
	} else {
		if i := bytes.LastIndexByte(in, ':'); i >= 0 {
			host, port, hasPort = in[:i], in[i+1:], true
		}
		if len(host) > 0 && host[len(host)-1] == '.' {
			host = host[:len(host)-1] // the root label: "example.com." is "example.com"
			changed = true
		}
		if len(host) == 0 || len(host) > 253 {
			return nil, false
		}
		label := 0
		for _, b := range host {
			c := hostByte[b]
			switch {
			case c == 0:
				return nil, false
			case c == '.':
				if label == 0 {
					return nil, false
				}
				label = 0
			default:
				if label++; label > 63 {
					return nil, false
				}
			}
			changed = changed || c != b
		}
		if label == 0 {
			return nil, false
		}
	}
	if hasPort {
		if len(port) > 5 {
			return nil, false
		}
		n := 0
		for _, b := range port {
			if b < '0' || b > '9' {
				return nil, false
			}
			n = n*10 + int(b-'0')
		}
		if n > 65535 {
			return nil, false
		}
		// "host:" has an empty port (RFC 3986 allows it): the canonical form drops the colon.
		changed = changed || len(port) == 0
	}
	if !changed {
		return in, true
	}
	for _, b := range host {
		dst = append(dst, lowerASCII(b))
	}
	if len(port) > 0 {
		dst = append(append(dst, ':'), port...)
	}
	return dst, true
}

// hostByte maps each byte allowed in a DNS name to its lower-case form, '.' to itself and
// everything else to 0.
var hostByte = func() (t [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = byte(c)
		t[c-'a'+'A'] = byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	t['-'], t['.'] = '-', '.'
	return t
}()

func lowerASCII(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// validIPv6 reports whether s (the text between brackets) is an IPv6 address without a zone.
func validIPv6(s []byte) bool {
	if len(s) < 2 || len(s) > 45 {
		return false
	}
	for _, b := range s {
		if !isHex(b) && b != ':' && b != '.' {
			return false // a zone ("%25eth0"), IPvFuture ("v1.x") or anything else
		}
	}
	a, err := netip.ParseAddr(string(s))
	return err == nil && a.Is6()
}

// validHeaderBlock checks the raw header block (fasthttp's RawHeaders, no request line): every
// field name is a token (RFC 9110 §5.1; fasthttp keeps "X Foo" and "Content Length" as names,
// which upstreams read in different ways), and Authorization appears at most once (it is not a
// list: with two, one would be verified and the other acted on).
func validHeaderBlock(raw []byte) bool {
	auth := false
	for len(raw) > 0 {
		// The blank line that ends the block, or an obs-fold continuation (fasthttp joins it
		// to the line before and refuses one that comes first), has no name.
		if c := raw[0]; c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			n := 0
			for n < len(raw) && tchar[raw[n]] {
				n++
			}
			if n == 0 || n == len(raw) || raw[n] != ':' {
				return false
			}
			if n == len("authorization") && ascii.EqualFoldLower(raw[:n], "authorization") {
				if auth {
					return false
				}
				auth = true
			}
		}
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			break
		}
		raw = raw[i+1:]
	}
	return true
}

// tchar marks the bytes of a token (RFC 9110 §5.6.2).
var tchar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
			bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0
	}
	return t
}()

// closeRequested reports whether a raw header block has a Connection field listing "close".
func closeRequested(raw []byte) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !ascii.EqualFoldLower(name, "connection") {
			continue
		}
		for tok := range bytes.SplitSeq(value, []byte(",")) {
			if ascii.EqualFoldLower(bytes.TrimSpace(tok), "close") {
				return true
			}
		}
	}
	return false
}
