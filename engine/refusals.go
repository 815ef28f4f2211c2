package engine

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/valyala/fasthttp"
)

// Requests refused before routing — malformed or smuggling-shaped framing, oversized headers,
// request-targets or bodies, unsupported versions, connections over a limit — never reach a
// pipeline or the observer. They are what a security operator most wants to see, so the server
// counts each one in sluice_requests_total{pipeline="(none)"} and logs why, rate-limited (a
// flood of bad requests must not become a flood of log lines).

// RefusalLogPerSecond is how many refusals the gateway log describes per second; a line after
// a quiet spell says how many went unlogged.
const RefusalLogPerSecond = 10

// Why a request was refused before routing, as the log says it.
const (
	reasonFraming      = "both Content-Length and Transfer-Encoding (request smuggling)"
	reasonHeaderBlock  = "malformed header block (bad header name or several Authorization headers)"
	reasonVersion      = "unsupported HTTP version"
	reasonConnect      = "CONNECT method"
	reasonHost         = "malformed host or absolute-form request-target"
	reasonDotParam     = "dot segment with path parameters"
	reasonEscapedSlash = "escaped slash in the path (escaped_slashes = \"reject\")"
	reasonURITooLong   = "request-target longer than max_uri_bytes"
	reasonHeaderPolicy = "refused by the header rules"
	reasonBody         = "request body over max_body_bytes or malformed"
	reasonClientCert   = "client certificate not accepted on this connection"
	reasonExpect       = "declared Content-Length over max_body_bytes (Expect: 100-continue)"
	reasonH2Request    = "malformed or oversized HTTP/2 request"
	reasonParse        = "request could not be parsed"
	reasonHeaderTooBig = "request header larger than max_header_bytes"
	reasonLineTooBig   = "request line larger than max_header_bytes"
	reasonBodyTooBig   = "request body over max_body_bytes"
	reasonReadTimeout  = "request not received within read_timeout"
	reasonTransferCode = "unsupported Transfer-Encoding"
)

// refusalLog rate-limits the log lines about refusals, per server (the connection limits log
// their refusals themselves, conns.go): RefusalLogPerSecond a second.
type refusalLog struct{ limit LogLimit }

// allow reports whether a line may be written now, and how many were suppressed before it.
func (r *refusalLog) allow(now time.Time) (ok bool, suppressed int) {
	return r.limit.Allow(now, RefusalLogPerSecond)
}

// countUnrouted counts a request answered status before routing (method nil: not known).
func countUnrouted(method []byte, status int) {
	metrics.UnroutedRequests().Record(&metrics.Request{Method: method, Status: status})
}

// log logs why a request was refused before routing, rate-limited.
func (r *refusalLog) log(log *slog.Logger, status int, reason string, peer netip.Addr, listener string) {
	ok, suppressed := r.allow(time.Now())
	if !ok || log == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 5)
	attrs = append(attrs, slog.Int("status", status), slog.String("reason", reason), slog.String("peer", peer.String()))
	if listener != "" {
		attrs = append(attrs, slog.String("listener", listener))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	log.LogAttrs(context.Background(), slog.LevelWarn, "request refused before routing: "+statusText(status), attrs...)
}

// refused logs a request refused before routing on a fasthttp connection (count: and counts it).
func (s *Server) refused(fc *fasthttp.RequestCtx, method []byte, status int, reason string, count bool) {
	peer := addrOf(fc.RemoteAddr())
	listener := ""
	if cc := connOf(fc); cc != nil && cc.lis != nil {
		listener = cc.lis.cfg.Name
	}
	if count {
		countUnrouted(method, status)
	}
	s.refusals.log(s.log, status, reason, peer, listener)
}

// errorReason says why fasthttp could not read a request, for the log.
func errorReason(status int) string {
	switch status {
	case fasthttp.StatusRequestHeaderFieldsTooLarge:
		return reasonHeaderTooBig
	case fasthttp.StatusRequestURITooLong:
		return reasonLineTooBig
	case fasthttp.StatusRequestEntityTooLarge:
		return reasonBodyTooBig
	case fasthttp.StatusRequestTimeout:
		return reasonReadTimeout
	case fasthttp.StatusNotImplemented:
		return reasonTransferCode
	}
	return reasonParse
}
