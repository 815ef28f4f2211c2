package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The 19 host functions of the http-wasm handler ABI (module "http_handler"). Each is a
// GoModuleFunction: it reads its arguments from the stack and writes its result back, finds its
// instance (and the request) through the call's context, and reads and writes guest memory
// through views, so a call allocates nothing. A function that cannot do what it is asked panics,
// which wazero turns into a trap of that call.

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type hostFunc struct {
	name    string
	params  []api.ValueType
	names   []string
	results []api.ValueType
	fn      api.GoModuleFunc
}

var hostFuncs = []hostFunc{
	{"enable_features", []api.ValueType{i32}, []string{"features"}, []api.ValueType{i32}, enableFeatures},
	{"get_config", []api.ValueType{i32, i32}, []string{"buf", "buf_limit"}, []api.ValueType{i32}, getConfig},
	{"log_enabled", []api.ValueType{i32}, []string{"level"}, []api.ValueType{i32}, logEnabled},
	{"log", []api.ValueType{i32, i32, i32}, []string{"level", "message", "message_len"}, nil, logMessage},
	{"get_method", []api.ValueType{i32, i32}, []string{"buf", "buf_limit"}, []api.ValueType{i32}, getMethod},
	{"set_method", []api.ValueType{i32, i32}, []string{"method", "method_len"}, nil, setMethod},
	{"get_uri", []api.ValueType{i32, i32}, []string{"buf", "buf_limit"}, []api.ValueType{i32}, getURI},
	{"set_uri", []api.ValueType{i32, i32}, []string{"uri", "uri_len"}, nil, setURI},
	{"get_protocol_version", []api.ValueType{i32, i32}, []string{"buf", "buf_limit"}, []api.ValueType{i32}, getProtocolVersion},
	{"get_source_addr", []api.ValueType{i32, i32}, []string{"buf", "buf_limit"}, []api.ValueType{i32}, getSourceAddr},
	{"get_header_names", []api.ValueType{i32, i32, i32}, []string{"kind", "buf", "buf_limit"}, []api.ValueType{i64}, getHeaderNames},
	{"get_header_values", []api.ValueType{i32, i32, i32, i32, i32}, []string{"kind", "name", "name_len", "buf", "buf_limit"}, []api.ValueType{i64}, getHeaderValues},
	{"set_header_value", []api.ValueType{i32, i32, i32, i32, i32}, []string{"kind", "name", "name_len", "value", "value_len"}, nil, setHeaderValue},
	{"add_header_value", []api.ValueType{i32, i32, i32, i32, i32}, []string{"kind", "name", "name_len", "value", "value_len"}, nil, addHeaderValue},
	{"remove_header", []api.ValueType{i32, i32, i32}, []string{"kind", "name", "name_len"}, nil, removeHeader},
	{"read_body", []api.ValueType{i32, i32, i32}, []string{"kind", "buf", "buf_limit"}, []api.ValueType{i64}, readBody},
	{"write_body", []api.ValueType{i32, i32, i32}, []string{"kind", "body", "body_len"}, nil, writeBody},
	{"get_status_code", nil, nil, []api.ValueType{i32}, getStatusCode},
	{"set_status_code", []api.ValueType{i32}, []string{"status_code"}, nil, setStatusCode},
}

func hostFunctionNames() []string {
	out := make([]string, len(hostFuncs))
	for i, h := range hostFuncs {
		out[i] = h.name
	}
	return out
}

func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(hostModuleName)
	for _, h := range hostFuncs {
		b = b.NewFunctionBuilder().WithGoModuleFunction(h.fn, h.params, h.results).
			WithParameterNames(h.names...).Export(h.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// Header and body kinds.
const (
	kindRequest          = 0
	kindResponse         = 1
	kindRequestTrailers  = 2
	kindResponseTrailers = 3
)

// trap is the panic value of a host function refusing a call; wazero reports it as the call's
// error, and the instance is discarded.
type trap string

func (t trap) Error() string { return "http_handler: " + string(t) }

func trapf(format string, args ...any) trap { return trap(fmt.Sprintf(format, args...)) }

// request returns the request the instance serves, trapping when the guest asks outside one
// (from its start function).
func (in *instance) request(fn string) *engine.Ctx {
	if in.c == nil {
		panic(trapf("%s called outside a request (e.g. from the start function)", fn))
	}
	return in.c
}

// mustBeforeNext traps unless the guest is in handle_request: the request has gone upstream.
func (in *instance) mustBeforeNext(fn, what string) *engine.Ctx {
	c := in.request(fn)
	if in.phase != phaseRequest {
		panic(trapf("%s: cannot change the %s after next (in handle_response)", fn, what))
	}
	return c
}

// mustResponseWritable traps when the guest changes the response's status or body in
// handle_response without having enabled buffer_response.
func (in *instance) mustResponseWritable(fn, what string) *engine.Ctx {
	c := in.request(fn)
	if in.phase == phaseResponse && in.features&featureBufferResponse == 0 {
		panic(trapf("%s: cannot change the response %s after next unless buffer_response is enabled", fn, what))
	}
	return c
}

// writeIfFits implements the buf/buf_limit protocol for one value: write it at buf only if it
// fits in limit, and return its length either way.
func (in *instance) writeIfFits(buf, limit uint32, v []byte, what string) uint64 {
	n := uint32(len(v))
	if n > 0 && n <= limit {
		copy(in.view(buf, n, what), v)
	}
	return uint64(n)
}

// writeList writes values NUL-terminated at buf if they fit in limit (lower-cased if lower),
// and returns count<<32 | total length.
func (in *instance) writeList(buf, limit uint32, vals [][]byte, lower bool, what string) uint64 {
	total := 0
	for _, v := range vals {
		total += len(v) + 1
	}
	if total == 0 {
		return 0
	}
	if uint64(total) <= uint64(limit) {
		dst := in.view(buf, uint32(total), what)
		i := 0
		for _, v := range vals {
			if lower {
				for _, b := range v {
					if 'A' <= b && b <= 'Z' {
						b += 'a' - 'A'
					}
					dst[i] = b
					i++
				}
			} else {
				i += copy(dst[i:], v)
			}
			dst[i] = 0
			i++
		}
	}
	return uint64(len(vals))<<32 | uint64(total)
}

// bytesString views b as a string without copying, for fasthttp APIs that take strings and only
// read them during the call.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// stringBytes views s as bytes without copying, for values that are only read.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func enableFeatures(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	want := uint32(stack[0]) & supportedFeatures
	if in.phase == phaseIdle {
		// From the start function: for every request this instance serves.
		in.baseFeatures |= want
		in.features = in.baseFeatures
	} else {
		in.features |= want
	}
	stack[0] = uint64(in.features)
}

func getConfig(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	stack[0] = in.writeIfFits(uint32(stack[0]), uint32(stack[1]), in.f.config, "get_config")
}

// slogLevel maps http-wasm levels (-1 debug, 0 info, 1 warn, 2 error, 3 none).
func slogLevel(level int32) (slog.Level, bool) {
	switch {
	case level <= -1:
		return slog.LevelDebug, true
	case level == 0:
		return slog.LevelInfo, true
	case level == 1:
		return slog.LevelWarn, true
	case level == 2:
		return slog.LevelError, true
	}
	return 0, false
}

func logEnabled(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	lvl, ok := slogLevel(int32(uint32(stack[0])))
	stack[0] = 0
	if ok && in.f.log.Enabled(context.Background(), lvl) {
		stack[0] = 1
	}
}

func logMessage(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	lvl, ok := slogLevel(int32(uint32(stack[0])))
	if ok && in.starting != nil {
		in.starting.logged(mod, lvl, uint32(stack[1]), uint32(stack[2]))
	}
	if !ok || !in.f.log.Enabled(context.Background(), lvl) {
		return
	}
	// The ABI says a host that cannot log ignores the message rather than trap.
	b, inRange := mod.Memory().Read(uint32(stack[1]), uint32(stack[2]))
	if !inRange {
		return
	}
	if !in.f.lim.guestLog.allow() {
		return
	}
	msg := string(b)
	rctx := context.Background()
	if in.c != nil && in.c.Context != nil {
		rctx = in.c.Context
		if span := trace.SpanFromContext(rctx); span.IsRecording() {
			span.AddEvent("wasm.log", trace.WithAttributes(
				attribute.String("log.severity", lvl.String()),
				attribute.String("log.message", msg)))
		}
	}
	in.f.log.Log(rctx, lvl, msg, "source", "guest")
}

func getMethod(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.request("get_method")
	stack[0] = in.writeIfFits(uint32(stack[0]), uint32(stack[1]), c.Request.Header.Method(), "get_method")
}

func setMethod(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.mustBeforeNext("set_method", "method")
	m := in.view(uint32(stack[0]), uint32(stack[1]), "set_method")
	if !validToken(m) {
		panic(trapf("set_method: %q is not a valid method", m))
	}
	c.Request.Header.SetMethodBytes(m)
}

// rawURI is the request target as received, still percent-encoded: path and query ("/" if
// empty; the scheme and authority of an absolute-form target are dropped).
func (in *instance) rawURI(c *engine.Ctx) []byte {
	u := c.Request.Header.RequestURI()
	if len(u) == 0 {
		return slash
	}
	if u[0] == '/' || (len(u) == 1 && u[0] == '*') {
		return u
	}
	path, q := engine.RawPath(c.Request)
	in.scratch = append(in.scratch[:0], path...)
	if len(in.scratch) == 0 {
		in.scratch = append(in.scratch, '/')
	}
	if len(q) > 0 {
		in.scratch = append(append(in.scratch, '?'), q...)
	}
	return in.scratch
}

var slash = []byte("/")

func getURI(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.request("get_uri")
	stack[0] = in.writeIfFits(uint32(stack[0]), uint32(stack[1]), in.rawURI(c), "get_uri")
}

func setURI(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.mustBeforeNext("set_uri", "URI")
	u := in.view(uint32(stack[0]), uint32(stack[1]), "set_uri")
	if len(u) == 0 {
		u = slash
	}
	if u[0] != '/' || !validURI(u) {
		panic(trapf("set_uri: %q is not an encoded path with optional query", u))
	}
	c.Request.SetRequestURIBytes(u)
	// Later filters match on the normalized path: keep it in step with the new URI.
	c.Path = engine.NormalizePath(c.Path[:0], c.Request.URI().PathOriginal())
}

// getProtocolVersion answers the protocol the client spoke (engine.Ctx.Proto), not the request's
// protocol bytes, which the gateway may rewrite for the upstream.
func getProtocolVersion(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.request("get_protocol_version")
	p := c.Proto
	if p == "" {
		p = "HTTP/1.1" // a Ctx not made by the server (a synthetic request)
	}
	stack[0] = in.writeIfFits(uint32(stack[0]), uint32(stack[1]), stringBytes(p), "get_protocol_version")
}

func getSourceAddr(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.request("get_source_addr")
	var port uint16
	var peer netip.Addr
	if ta, ok := c.Fast.RemoteAddr().(*net.TCPAddr); ok {
		port = uint16(ta.Port)
		peer, _ = netip.AddrFromSlice(ta.IP)
		peer = peer.Unmap()
	}
	addr := c.ClientAddr.Unmap()
	if !addr.IsValid() {
		addr = peer
	}
	if addr != peer {
		// The client is behind a trusted proxy: its port is not known.
		port = 0
	}
	in.scratch = netip.AddrPortFrom(addr, port).AppendTo(in.scratch[:0])
	stack[0] = in.writeIfFits(uint32(stack[0]), uint32(stack[1]), in.scratch, "get_source_addr")
}

func headerKind(fn string, kind uint32) uint32 {
	if kind > kindResponseTrailers {
		panic(trapf("%s: unknown header kind %d", fn, kind))
	}
	return kind
}

func getHeaderNames(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.request("get_header_names")
	names := in.names[:0]
	add := func(k []byte) {
		for _, n := range names {
			if ascii.EqualFold(n, k) {
				return
			}
		}
		names = append(names, k)
	}
	switch headerKind("get_header_names", uint32(stack[0])) {
	case kindRequest:
		for k := range c.Request.Header.All() {
			add(k)
		}
	case kindResponse:
		for k := range c.Response.Header.All() {
			add(k)
		}
	case kindResponseTrailers:
		if in.features&featureTrailers != 0 {
			names = trailerNames(names, &c.Response.Header)
		}
	default: // request trailers: none (see trailers.go)
	}
	stack[0] = in.writeList(uint32(stack[1]), uint32(stack[2]), names, true, "get_header_names")
	in.names = names[:0]
}

var setCookie = []byte("Set-Cookie")

func getHeaderValues(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.request("get_header_values")
	kind := headerKind("get_header_values", uint32(stack[0]))
	name := in.view(uint32(stack[1]), uint32(stack[2]), "get_header_values")
	if len(name) == 0 {
		panic(trap("get_header_values: empty header name"))
	}
	var vals [][]byte
	switch kind {
	case kindRequest:
		vals = c.Request.Header.PeekAll(bytesString(name))
	case kindResponse:
		if ascii.EqualFold(name, setCookie) {
			// fasthttp keeps cookies apart and PeekAll would join them: list each one.
			vals = in.names[:0]
			for k, v := range c.Response.Header.All() {
				if ascii.EqualFold(k, setCookie) {
					vals = append(vals, v)
				}
			}
			in.names = vals[:0]
		} else {
			vals = c.Response.Header.PeekAll(bytesString(name))
		}
	case kindResponseTrailers:
		if in.features&featureTrailers != 0 {
			vals = trailerValues(&c.Response.Header, name)
		}
	}
	stack[0] = in.writeList(uint32(stack[3]), uint32(stack[4]), vals, false, "get_header_values")
}

// headerArgs reads and checks a header name and value from guest memory.
func (in *instance) headerArgs(fn string, stack []uint64, withValue bool) (kind uint32, name, value []byte) {
	kind = headerKind(fn, uint32(stack[0]))
	name = in.view(uint32(stack[1]), uint32(stack[2]), fn)
	if !validToken(name) {
		panic(trapf("%s: %q is not a valid header name", fn, name))
	}
	if withValue {
		value = in.view(uint32(stack[3]), uint32(stack[4]), fn)
		if !validValue(value) {
			panic(trapf("%s: the value of %s contains a control character", fn, name))
		}
	}
	return kind, name, value
}

func setHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	kind := headerKind("set_header_value", uint32(stack[0]))
	name := in.view(uint32(stack[1]), uint32(stack[2]), "set_header_value")
	// The name's canonical form, normalised by fasthttp's own function once per instance and
	// name (names.go): SetBytesKV would copy the name, check it again and normalize it in a
	// second pass on every call.
	e := in.canon.lookup(name)
	if e == nil {
		panic(trapf("set_header_value: %q is not a valid header name", name))
	}
	value := in.view(uint32(stack[3]), uint32(stack[4]), "set_header_value")
	if !validValue(value) {
		panic(trapf("set_header_value: the value of %s contains a control character", name))
	}
	if kind >= kindRequestTrailers {
		in.changeTrailer("set_header_value", kind, opSet, name, value)
		return
	}
	if kind == kindRequest {
		in.canon.setRequestHeader(&in.mustBeforeNext("set_header_value", "request headers").Request.Header, e, value)
		return
	}
	in.canon.setResponseHeader(&in.request("set_header_value").Response.Header, e, value)
	if in.phase == phaseRequest {
		in.recordOp(opSet, name, value)
	}
}

func addHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	kind, name, value := in.headerArgs("add_header_value", stack, true)
	if kind >= kindRequestTrailers {
		in.changeTrailer("add_header_value", kind, opAdd, name, value)
		return
	}
	if kind == kindRequest {
		in.mustBeforeNext("add_header_value", "request headers").Request.Header.AddBytesKV(name, value)
		return
	}
	in.request("add_header_value").Response.Header.AddBytesKV(name, value)
	if in.phase == phaseRequest {
		in.recordOp(opAdd, name, value)
	}
}

func removeHeader(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	kind, name, _ := in.headerArgs("remove_header", stack, false)
	if kind >= kindRequestTrailers {
		in.changeTrailer("remove_header", kind, opDel, name, nil)
		return
	}
	if kind == kindRequest {
		in.mustBeforeNext("remove_header", "request headers").Request.Header.DelBytes(name)
		return
	}
	in.request("remove_header").Response.Header.DelBytes(name)
	if in.phase == phaseRequest {
		in.recordOp(opDel, name, nil)
	}
}

func bodyKind(fn string, kind uint32) uint32 {
	if kind > kindResponse {
		panic(trapf("%s: unknown body kind %d", fn, kind))
	}
	return kind
}

func readBody(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.request("read_body")
	kind := bodyKind("read_body", uint32(stack[0]))
	buf, limit := uint32(stack[1]), uint32(stack[2])
	if limit == 0 {
		panic(trap("read_body: buf_limit is 0"))
	}
	var body []byte
	var read *int
	if kind == kindRequest {
		if in.phase == phaseResponse && in.features&featureBufferRequest == 0 {
			panic(trap("read_body: cannot read the request body after next unless buffer_request is enabled"))
		}
		if c.Request.IsBodyStream() {
			// Streamed (larger than what came with the head, or chunked): read it in, up to
			// max_body_bytes. A body that cannot be (too large, the client stalled) stops the
			// guest: the request is answered with the body's status (Filter.failBody).
			if err := c.BufferBody(0); err != nil {
				in.bodyErr = err
				panic(trapf("read_body: the request body cannot be read: %v", err))
			}
		}
		body, read = c.Request.Body(), &in.reqBodyRead
	} else {
		if in.phase == phaseResponse && in.features&featureBufferResponse == 0 {
			panic(trap("read_body: cannot read the response body after next unless buffer_response is enabled"))
		}
		if c.Response.IsBodyStream() {
			// Too large to buffer (max_response_bytes): it streams to the client unread.
			in.f.log.Debug("response body is streamed: the guest reads it as empty")
			stack[0] = 1 << 32
			return
		}
		body, read = c.Response.Body(), &in.respBodyRead
	}
	rest := body[min(*read, len(body)):]
	n := copy(in.view(buf, uint32(min(len(rest), int(limit))), "read_body"), rest)
	*read += n
	var eof uint64
	if n == len(rest) {
		eof = 1
	}
	stack[0] = eof<<32 | uint64(n)
}

func writeBody(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	kind := bodyKind("write_body", uint32(stack[0]))
	b := in.view(uint32(stack[1]), uint32(stack[2]), "write_body")
	if kind == kindRequest {
		c := in.mustBeforeNext("write_body", "request body")
		// Before the first write the client's body is being replaced: not read (it may be a
		// stream, which Body would read whole).
		have := 0
		if in.reqWritten {
			have = len(c.Request.Body())
		}
		in.checkBodySize(in.reqWritten, have, len(b), in.f.lim.maxReqBody, "request")
		if in.reqWritten && have+len(b) > bigBodyBytes {
			c.Request.SetBodyRaw(in.appendGuestBody(nil, c.Request.Body(), b, in.f.lim.maxReqBody))
			return
		}
		// The first write replaces the client's body; later ones append.
		if !in.reqWritten {
			c.Request.SetBody(b)
			in.reqWritten = true
		} else {
			c.Request.AppendBody(b)
		}
		return
	}
	c := in.mustResponseWritable("write_body", "body")
	in.checkBodySize(in.respWritten, len(c.Response.Body()), len(b), in.f.lim.maxRespBody, "response")
	if in.respWritten && len(c.Response.Body())+len(b) > bigBodyBytes {
		c.Response.SetBodyRaw(in.appendGuestBody(c, c.Response.Body(), b, in.f.lim.maxRespBody))
		return
	}
	if !in.respWritten {
		c.Response.SetBody(b)
		in.respWritten = true
	} else {
		c.Response.AppendBody(b)
	}
}

func getStatusCode(ctx context.Context, _ api.Module, stack []uint64) {
	c := instanceOf(ctx).request("get_status_code")
	stack[0] = uint64(uint32(c.Response.StatusCode()))
}

func setStatusCode(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.mustResponseWritable("set_status_code", "status")
	code := int(int32(uint32(stack[0])))
	if code < 100 || code > 999 {
		panic(trapf("set_status_code: %d is not an HTTP status", code))
	}
	c.Response.SetStatusCode(code)
	if in.phase == phaseRequest {
		in.statusSet = code
	}
}

// validToken reports whether b is a non-empty HTTP token (method or header name).
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenByte[c] {
			return false
		}
	}
	return true
}

// tokenByte marks the bytes allowed in an HTTP token (RFC 9110 tchar).
var tokenByte = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?={}`, c)
	}
	return t
}()

// validValue rejects control characters (CR and LF would split the message), allowing tab.
func validValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validURI rejects spaces and control characters in a request target.
func validURI(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
