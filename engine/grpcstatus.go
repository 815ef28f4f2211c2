package engine

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"
)

// gRPC clients read a call's outcome from the grpc-status and grpc-message fields, never from the
// HTTP status: a 401 text/plain answer from the jwt filter reads to them as a protocol error
// ("unexpected HTTP status code"), not as UNAUTHENTICATED. So a gRPC request the gateway answers
// itself — a filter's local reply, a balancer failure, the no-route 404, a recovered panic — gets
// its answer turned into a gRPC status here, in the one place where every response leaves the
// engine (Server.serve and the no-route branch of the request handler), not in each filter.

// gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html) the gateway
// answers with.
const (
	GRPCOK                = 0
	GRPCCancelled         = 1
	GRPCUnknown           = 2
	GRPCDeadlineExceeded  = 4
	GRPCPermissionDenied  = 7
	GRPCResourceExhausted = 8
	GRPCUnimplemented     = 12
	GRPCInternal          = 13
	GRPCUnavailable       = 14
	GRPCUnauthenticated   = 16
)

// GRPCStatusForHTTP maps a status the gateway answered with to the gRPC status a gRPC client
// gets instead. Sluice's table; Envoy's and gRPC's own HTTP-to-gRPC tables differ in sending 429
// and 504 to UNAVAILABLE, which a client would retry: a rate limit and a spent deadline are not
// worth retrying at once.
func GRPCStatusForHTTP(status int) int {
	switch {
	case status == fasthttp.StatusUnauthorized:
		return GRPCUnauthenticated
	case status == fasthttp.StatusForbidden:
		return GRPCPermissionDenied
	case status == fasthttp.StatusTooManyRequests, status == fasthttp.StatusRequestEntityTooLarge,
		status == fasthttp.StatusRequestHeaderFieldsTooLarge:
		return GRPCResourceExhausted
	case status == fasthttp.StatusBadGateway, status == fasthttp.StatusServiceUnavailable:
		return GRPCUnavailable
	case status == fasthttp.StatusGatewayTimeout:
		return GRPCDeadlineExceeded
	case status == fasthttp.StatusNotFound:
		return GRPCUnimplemented
	case status >= 400 && status <= 499:
		return GRPCInternal
	}
	return GRPCUnknown
}

// grpcKind tells what a content type is: not gRPC, gRPC (application/grpc, +proto, +json, …),
// gRPC-Web or gRPC-Web-text.
type grpcKind uint8

const (
	notGRPC grpcKind = iota
	grpcNative
	grpcWeb
	grpcWebText
)

const ctGRPC = "application/grpc"

// grpcKindOf classifies a content type. Only a content type that starts with application/grpc
// is looked at further: for every other request this is one length check and one comparison.
func grpcKindOf(ct []byte) grpcKind {
	if len(ct) < len(ctGRPC) || string(ct[:len(ctGRPC)]) != ctGRPC {
		return notGRPC
	}
	rest := ct[len(ctGRPC):]
	switch {
	case len(rest) == 0 || rest[0] == '+' || rest[0] == ';':
		return grpcNative
	case bytes.HasPrefix(rest, []byte("-web-text")):
		return grpcWebText
	case bytes.HasPrefix(rest, []byte("-web")):
		return grpcWeb
	}
	return notGRPC // application/grpcfoo
}

// IsGRPC reports whether a request is a gRPC call (content type application/grpc, with or
// without a +codec suffix or parameters). gRPC-Web requests are not: see IsGRPCAny.
func IsGRPC(h *fasthttp.RequestHeader) bool { return grpcKindOf(h.ContentType()) == grpcNative }

// IsGRPCAny reports whether a request is a gRPC or gRPC-Web call.
func IsGRPCAny(h *fasthttp.RequestHeader) bool { return grpcKindOf(h.ContentType()) != notGRPC }

var (
	hdrGRPCStatus  = []byte("Grpc-Status")
	hdrGRPCMessage = []byte("Grpc-Message")
	ctGRPCBytes    = []byte(ctGRPC)
	ctGRPCWeb      = []byte("application/grpc-web")
	ctGRPCWebText  = []byte("application/grpc-web-text")
	grpcStatusText [17][]byte
)

func init() {
	for i := range grpcStatusText {
		grpcStatusText[i] = strconv.AppendInt(nil, int64(i), 10)
	}
}

// maxGRPCMessage bounds the grpc-message the gateway sends (the reply's text, percent-encoded).
const maxGRPCMessage = 512

// grpcAnswer turns the response to a gRPC or gRPC-Web request into a gRPC status when the
// gateway produced it (a filter's reply, a balancer failure, the no-route 404): HTTP 200, the
// request's gRPC content type, no body, and grpc-status and grpc-message in the header section.
// On HTTP/2 that is a trailers-only response (one HEADERS frame ending the stream), the form the
// gRPC protocol specifies for a call that fails before any message. HTTP/1.1 has no trailers-only
// form: the same header section with an empty body is sent, which gRPC-over-HTTP/1.1 bridges and
// gRPC-Web clients read as the status (gRPC-Web allows the status in the headers). A response
// whose content type is already gRPC (the upstream's own answer, OK or not) is left alone; an
// upstream's non-gRPC answer (an HTTP server's error page) is mapped like the gateway's own, as
// the gRPC protocol tells clients to map an HTTP status without grpc-status. It
// returns the gRPC status set, or -1 when nothing changed. Other requests cost one content-type
// comparison and allocate nothing.
func grpcAnswer(c *Ctx) int { return grpcAnswerTo(c.Request, c.Response) }

// grpcAnswerTo is grpcAnswer for a request and its response: the HTTP/2 server calls it for a
// stream refused before it became a Ctx (admission, max_body_bytes), so those answers reach a
// gRPC client as a status too. An answer already mapped is left as it is.
func grpcAnswerTo(req *fasthttp.Request, resp *fasthttp.Response) int {
	kind := grpcKindOf(req.Header.ContentType())
	if kind == notGRPC {
		return -1
	}
	if grpcKindOf(resp.Header.ContentType()) != notGRPC {
		return -1 // a gRPC response (the upstream's, or a filter that speaks gRPC)
	}
	status := resp.StatusCode()
	code := GRPCStatusForHTTP(status)
	var buf [maxGRPCMessage]byte
	msg := appendGRPCMessage(buf[:0], grpcReplyText(resp, status))
	// The body is replaced (a stream is closed); the reply's other headers stay: they are the
	// call's metadata (WWW-Authenticate, Retry-After, the request id).
	resp.ResetBody()
	resp.Header.Del(fasthttp.HeaderContentEncoding)
	resp.SetStatusCode(fasthttp.StatusOK)
	switch kind {
	case grpcWeb:
		resp.Header.SetContentTypeBytes(ctGRPCWeb)
	case grpcWebText:
		resp.Header.SetContentTypeBytes(ctGRPCWebText)
	default:
		resp.Header.SetContentTypeBytes(ctGRPCBytes)
	}
	resp.Header.SetContentLength(0)
	resp.Header.SetBytesKV(hdrGRPCStatus, grpcStatusText[code])
	if len(msg) > 0 {
		resp.Header.SetBytesKV(hdrGRPCMessage, msg)
	}
	return code
}

// grpcReplyText is what grpc-message says: the gateway's short text body (what c.Fail and the
// filters' replies write, "Unauthorized\n"), else the HTTP status text.
func grpcReplyText(resp *fasthttp.Response, status int) []byte {
	if !resp.IsBodyStream() && bytes.HasPrefix(resp.Header.ContentType(), []byte("text/plain")) {
		if b := bytes.TrimSpace(resp.Body()); len(b) > 0 && len(b) <= maxGRPCMessage/3 {
			return b
		}
	}
	return []byte(fasthttp.StatusMessage(status)) // a gRPC error reply: one small copy is fine
}

// appendGRPCMessage appends msg percent-encoded as the gRPC protocol specifies for grpc-message:
// bytes outside printable ASCII (0x20–0x7E) and '%' become %XX (UTF-8 stays valid: it is encoded
// byte by byte and decoded the same way). Control characters and line breaks cannot survive.
func appendGRPCMessage(dst, msg []byte) []byte {
	const hexdig = "0123456789ABCDEF"
	for _, b := range msg {
		if len(dst)+3 > cap(dst) {
			break
		}
		if b >= 0x20 && b <= 0x7e && b != '%' {
			dst = append(dst, b)
			continue
		}
		dst = append(dst, '%', hexdig[b>>4], hexdig[b&0xf])
	}
	return dst
}

// grpcAnswer is grpcAnswer for a pipeline's response: a 5xx the gateway produced is logged with
// its cause first (the client then sees HTTP 200, which the request handler does not log).
func (s *Server) grpcAnswer(c *Ctx) {
	if grpcKindOf(c.Request.Header.ContentType()) == notGRPC {
		return
	}
	status := c.Response.StatusCode()
	if c.Failure != nil && status >= 500 && grpcKindOf(c.Response.Header.ContentType()) == notGRPC {
		s.failures.record(s.log, c, status, s.reqID)
	}
	grpcAnswer(c)
}

// GRPCStatusOf returns the gRPC status a gRPC or gRPC-Web call ends with, for logs and traces:
// the response's grpc-status (a trailers-only answer, the gateway's mapped one, trailers held
// with the body, or — read by a ResponseFinisher — the trailers after a streamed body), or, for
// an answer the server has still to map (a filter's response phase runs before that), the status
// it will map to; for a streamed response cut before its trailers, CANCELLED (the client went
// away) or INTERNAL (the upstream failed). ok is false for other requests, and for a gRPC
// response whose status is still to come in trailers after a streamed body (asked before the
// body ended: telemetry and otel_log ask at its end, see respfinish.go).
func GRPCStatusOf(c *Ctx) (code int, ok bool) {
	if grpcKindOf(c.Request.Header.ContentType()) == notGRPC {
		return 0, false
	}
	resp := c.Response
	if grpcKindOf(resp.Header.ContentType()) == notGRPC {
		return GRPCStatusForHTTP(resp.StatusCode()), true
	}
	if code, ok := GRPCWebStatus.Get(c); ok {
		return code, true // grpcweb.go: the trailers went into the body
	}
	v := resp.Header.PeekBytes(hdrGRPCStatus)
	if len(v) == 0 {
		return c.cutGRPCStatus() // respfinish.go
	}
	if len(v) > 3 {
		return 0, false
	}
	n := 0
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int(b-'0')
	}
	return n, true
}
