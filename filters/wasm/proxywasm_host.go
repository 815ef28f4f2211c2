package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"github.com/valyala/fasthttp"
)

// The proxy-wasm host functions (module "env"). As the spec says, a function that cannot do what
// it is asked returns a WasmResult (InvalidMemoryAccess for a pointer or size outside the guest's
// memory, BadArgument for a call in the wrong phase or a malformed argument, NotFound…) rather
// than trapping; the SDKs decide what a failure means. Functions Sluice does not implement (gRPC,
// foreign functions, properties writes) return Unimplemented, so that modules importing them
// load.

type pwHostFunc struct {
	name string
	sig  pwSig
	fn   api.GoModuleFunc
}

var pwHostFuncs = []pwHostFunc{
	{"proxy_log", sig("iii", "i"), pwLog},
	{"proxy_get_log_level", sig("i", "i"), pwGetLogLevel},
	{"proxy_get_current_time_nanoseconds", sig("i", "i"), pwGetTime},
	{"proxy_set_tick_period_milliseconds", sig("i", "i"), pwSetTick},
	{"proxy_get_property", sig("iiii", "i"), pwGetProperty},
	{"proxy_set_property", sig("iiii", "i"), pwUnimplementedFn},
	{"proxy_continue_stream", sig("i", "i"), pwContinueStream},
	{"proxy_close_stream", sig("i", "i"), pwUnimplementedFn},
	{"proxy_send_local_response", sig("iiiiiiii", "i"), pwSendLocalResponse},
	{"proxy_clear_route_cache", sig("", "i"), pwOKFn},
	{"proxy_get_shared_data", sig("iiiii", "i"), pwGetSharedData},
	{"proxy_set_shared_data", sig("iiiii", "i"), pwSetSharedData},
	{"proxy_register_shared_queue", sig("iii", "i"), pwRegisterQueue},
	{"proxy_resolve_shared_queue", sig("iiiii", "i"), pwResolveQueue},
	{"proxy_dequeue_shared_queue", sig("iii", "i"), pwDequeue},
	{"proxy_enqueue_shared_queue", sig("iii", "i"), pwEnqueue},
	{"proxy_get_header_map_value", sig("iiiii", "i"), pwGetHeader},
	{"proxy_get_header_map_pairs", sig("iii", "i"), pwGetHeaderPairs},
	{"proxy_set_header_map_pairs", sig("iii", "i"), pwSetHeaderPairs},
	{"proxy_add_header_map_value", sig("iiiii", "i"), pwAddHeader},
	{"proxy_replace_header_map_value", sig("iiiii", "i"), pwReplaceHeader},
	{"proxy_remove_header_map_value", sig("iii", "i"), pwRemoveHeader},
	{"proxy_get_header_map_size", sig("ii", "i"), pwGetHeaderMapSize},
	{"proxy_get_buffer_bytes", sig("iiiii", "i"), pwGetBuffer},
	{"proxy_get_buffer_status", sig("iii", "i"), pwGetBufferStatus},
	{"proxy_set_buffer_bytes", sig("iiiii", "i"), pwSetBuffer},
	{"proxy_http_call", sig("iiiiiiiiii", "i"), pwHTTPCall},
	{"proxy_define_metric", sig("iiii", "i"), pwDefineMetric},
	{"proxy_increment_metric", sig("iI", "i"), pwIncrementMetric},
	{"proxy_record_metric", sig("iI", "i"), pwRecordMetric},
	{"proxy_get_metric", sig("ii", "i"), pwGetMetric},
	{"proxy_set_effective_context", sig("i", "i"), pwSetEffectiveContext},
	{"proxy_done", sig("", "i"), pwOKFn},
	// Stubs: imported by the SDKs, not implemented by Sluice.
	{"proxy_get_status", sig("iii", "i"), pwUnimplementedFn},
	{"proxy_call_foreign_function", sig("iiiiii", "i"), pwUnimplementedFn},
	{"proxy_grpc_call", sig("iiiiiiiiiiii", "i"), pwUnimplementedFn},
	{"proxy_grpc_stream", sig("iiiiiiiii", "i"), pwUnimplementedFn},
	{"proxy_grpc_send", sig("iiii", "i"), pwUnimplementedFn},
	{"proxy_grpc_cancel", sig("i", "i"), pwUnimplementedFn},
	{"proxy_grpc_close", sig("i", "i"), pwUnimplementedFn},
	// AssemblyScript's default abort (a guest built without --use abort=…).
	{"abort", sig("iiii", ""), pwAbort},
}

func pwHostFunctionNames() []string {
	out := make([]string, 0, len(pwHostFuncs))
	for _, h := range pwHostFuncs {
		out = append(out, h.name)
	}
	return out
}

func instantiatePWHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(pwModuleEnv)
	for _, h := range pwHostFuncs {
		b = b.NewFunctionBuilder().WithGoModuleFunction(h.fn, h.sig.params, h.sig.results).Export(h.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// instantiateWASIUnstable provides proc_exit of the pre-preview1 WASI module that AssemblyScript
// 0.14's abort_proc_exit imports.
func instantiateWASIUnstable(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(pwModuleWASIUnstable).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			panic(sys.NewExitError(uint32(stack[0])))
		}), []api.ValueType{i32}, nil).Export("proc_exit").Instantiate(ctx)
	return err
}

func pwAbort(context.Context, api.Module, []uint64) {
	panic(trap("the guest aborted (AssemblyScript abort)"))
}

func pwUnimplementedFn(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = pwUnimplemented
}

func pwOKFn(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = pwOK
}

// pwRead returns guest memory [off, off+n), ok false when out of range.
func (in *instance) pwRead(off, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	return in.read(off, n)
}

// pwReturn hands data to the guest: it allocates len(data) bytes with the guest's allocator,
// copies data there and writes the pointer and size at ptrPtr and sizePtr.
func (in *instance) pwReturn(ctx context.Context, mod api.Module, data []byte, ptrPtr, sizePtr uint32) uint64 {
	// Check the out-pointers before allocating, so a bad call does not leak guest memory.
	if _, ok := in.read(ptrPtr, 4); !ok {
		return pwInvalidMemory
	}
	if _, ok := in.read(sizePtr, 4); !ok {
		return pwInvalidMemory
	}
	var ptr uint32
	if len(data) > 0 {
		p := in.pw
		if p.alloc == nil {
			return pwInternalFailure
		}
		p.allocStack[0] = uint64(len(data))
		if err := p.alloc.CallWithStack(ctx, p.allocStack[:]); err != nil {
			panic(fmt.Errorf("the guest's allocator failed: %w", err))
		}
		ptr = uint32(p.allocStack[0])
		// The allocator may have grown the memory: in.memory is its slice now.
		dst, ok := in.read(ptr, uint32(len(data)))
		if !ok {
			return pwInvalidMemory
		}
		copy(dst, data)
	}
	ptrAt, _ := in.read(ptrPtr, 4)
	binary.LittleEndian.PutUint32(ptrAt, ptr)
	sizeAt, _ := in.read(sizePtr, 4)
	binary.LittleEndian.PutUint32(sizeAt, uint32(len(data)))
	return pwOK
}

// pwLevel maps proxy-wasm log levels (trace 0 … critical 5).
func pwLevel(l uint32) slog.Level {
	switch l {
	case 0, 1:
		return slog.LevelDebug
	case 2:
		return slog.LevelInfo
	case 3:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func pwLog(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	lvl := pwLevel(uint32(stack[0]))
	b, ok := in.pwRead(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	stack[0] = pwOK
	if in.starting != nil {
		in.starting.logged(mod, lvl, uint32(stack[1]), uint32(stack[2]))
	}
	if !in.f.log.Enabled(context.Background(), lvl) || !in.f.lim.guestLog.allow() {
		return
	}
	rctx := context.Background()
	if in.c != nil && in.c.Context != nil {
		rctx = in.c.Context
	}
	in.f.log.Log(rctx, lvl, string(b), "source", "guest")
}

func pwGetLogLevel(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	level := uint32(5)
	for l := uint32(0); l < 5; l++ {
		if in.f.log.Enabled(context.Background(), pwLevel(l)) {
			level = l
			break
		}
	}
	stack[0] = pwWriteStatus(mod.Memory().WriteUint32Le(uint32(stack[0]), level))
}

func pwGetTime(_ context.Context, mod api.Module, stack []uint64) {
	stack[0] = pwWriteStatus(mod.Memory().WriteUint64Le(uint32(stack[0]), uint64(time.Now().UnixNano())))
}

func pwSetTick(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	d := time.Duration(uint32(stack[0])) * time.Millisecond
	if d > 0 && d < pwMinTick {
		d = pwMinTick
	}
	in.f.pw.tickPeriod.Store(int64(d))
	if d > 0 {
		in.f.pw.startTick()
	}
	stack[0] = pwOK
}

func pwContinueStream(ctx context.Context, _ api.Module, stack []uint64) {
	p := instanceOf(ctx).pw
	t := uint32(stack[0])
	if p.ctxID == 0 || t > pwStreamResponse {
		stack[0] = pwBadArgument
		return
	}
	p.resumed[t] = true
	stack[0] = pwOK
}

func pwSetEffectiveContext(ctx context.Context, _ api.Module, stack []uint64) {
	p := instanceOf(ctx).pw
	id := uint32(stack[0])
	if id != pwRootContext && (id == 0 || id != p.ctxID) {
		stack[0] = pwBadArgument
		return
	}
	p.effective = id
	stack[0] = pwOK
}

// pwRequest returns the request the current callback may act on, nil outside one (root
// context callbacks: start, tick, queue ready).
func (in *instance) pwRequest() *engine.Ctx {
	if in.pw.ctxID == 0 {
		return nil
	}
	return in.c
}

func pwSendLocalResponse(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	c := in.pwRequest()
	status := int(uint32(stack[0]))
	body, ok1 := in.pwRead(uint32(stack[3]), uint32(stack[4]))
	pairs, ok2 := in.pwRead(uint32(stack[5]), uint32(stack[6]))
	switch {
	case !ok1 || !ok2:
		stack[0] = pwInvalidMemory
		return
	case c == nil || in.pw.local:
		stack[0] = pwBadArgument
		return
	case status < 200 || status > 599:
		stack[0] = pwBadArgument
		return
	}
	hdrs, ok := pwDecodePairs(pairs)
	if !ok {
		stack[0] = pwSerialization
		return
	}
	for _, h := range hdrs {
		if !validToken(h[0]) || !validValue(h[1]) {
			stack[0] = pwBadArgument
			return
		}
	}
	resp := c.Response
	resp.Reset()
	resp.SetStatusCode(status)
	resp.SetBody(body)
	for _, h := range hdrs {
		resp.Header.AddBytesKV(h[0], h[1])
	}
	in.pw.local = true
	stack[0] = pwOK
}

// pwDecodePairs decodes the proxy-wasm header pairs encoding: a u32 count, count pairs of u32
// sizes (name, value), then each name and value followed by a NUL.
func pwDecodePairs(b []byte) ([][2][]byte, bool) {
	if len(b) == 0 {
		return nil, true
	}
	if len(b) < 4 {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n)*8 > uint64(len(b)-4) {
		return nil, false
	}
	sizes := b[4 : 4+8*n]
	data := b[4+8*n:]
	out := make([][2][]byte, 0, n)
	for i := uint32(0); i < n; i++ {
		kl := uint64(binary.LittleEndian.Uint32(sizes[8*i:]))
		vl := uint64(binary.LittleEndian.Uint32(sizes[8*i+4:]))
		if kl+vl+2 > uint64(len(data)) {
			return nil, false
		}
		k := data[:kl]
		v := data[kl+1 : kl+1+vl]
		data = data[kl+vl+2:]
		out = append(out, [2][]byte{k, v})
	}
	return out, true
}

// pwEncodePairs appends the pairs encoding of hdrs to dst.
func pwEncodePairs(dst []byte, hdrs [][2][]byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(hdrs)))
	for _, h := range hdrs {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h[0])))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h[1])))
	}
	for _, h := range hdrs {
		dst = append(append(dst, h[0]...), 0)
		dst = append(append(dst, h[1]...), 0)
	}
	return dst
}

// Header map types.
const (
	pwMapRequest          = 0
	pwMapRequestTrailers  = 1
	pwMapResponse         = 2
	pwMapResponseTrailers = 3
	pwMapCallHeaders      = 6
	pwMapCallTrailers     = 7
)

// pwHeaders lists a header map's pairs (names lower-cased, pseudo-headers first), or ok false
// when the map is not available in the current callback.
func (in *instance) pwHeaders(kind uint32) (hdrs [][2][]byte, ok bool) {
	p := in.pw
	if kind == pwMapCallHeaders || kind == pwMapCallTrailers {
		if p.callResp == nil {
			return nil, false
		}
		if kind == pwMapCallTrailers {
			return nil, true
		}
		return p.callResp.headers, true
	}
	c := in.pwRequest()
	if c == nil {
		return nil, false
	}
	lower := func(k []byte) []byte { return bytes.ToLower(k) }
	switch kind {
	case pwMapRequest:
		h := &c.Request.Header
		scheme := "http"
		if c.Fast != nil && c.Fast.IsTLS() {
			scheme = "https"
		}
		hdrs = append(hdrs,
			[2][]byte{[]byte(":method"), h.Method()},
			[2][]byte{[]byte(":path"), in.rawURI(c)},
			[2][]byte{[]byte(":authority"), h.Host()},
			[2][]byte{[]byte(":scheme"), []byte(scheme)})
		for k, v := range h.All() {
			if ascii := lower(k); string(ascii) != "host" {
				hdrs = append(hdrs, [2][]byte{ascii, v})
			}
		}
		return hdrs, true
	case pwMapResponse:
		if p.phase != phaseResponse {
			return nil, false
		}
		hdrs = append(hdrs, [2][]byte{[]byte(":status"), fmt.Appendf(nil, "%d", c.Response.StatusCode())})
		for k, v := range c.Response.Header.All() {
			hdrs = append(hdrs, [2][]byte{lower(k), v})
		}
		return hdrs, true
	case pwMapRequestTrailers:
		return nil, true // request trailers: none (see trailers.go)
	case pwMapResponseTrailers:
		if p.phase != phaseResponse {
			return nil, false
		}
		for _, n := range trailerNames(nil, &c.Response.Header) {
			for _, v := range trailerValues(&c.Response.Header, n) {
				hdrs = append(hdrs, [2][]byte{lower(n), v})
			}
		}
		return hdrs, true
	}
	return nil, false
}

func pwGetHeader(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	key, ok := in.pwRead(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	v, found, ok := in.pwHeaderValue(uint32(stack[0]), key)
	switch {
	case !ok:
		stack[0] = pwBadArgument
	case !found:
		stack[0] = pwNotFound
	default:
		stack[0] = in.pwReturn(ctx, mod, v, uint32(stack[3]), uint32(stack[4]))
	}
}

// pwHeaderValue looks one header up without listing the map (the common call, kept free of
// allocations for regular headers); ok is false when the map is not available now.
func (in *instance) pwHeaderValue(kind uint32, key []byte) (v []byte, found, ok bool) {
	c := in.pwRequest()
	regular := len(key) > 0 && key[0] != ':'
	switch {
	case c != nil && kind == pwMapRequest && string(key) == ":method":
		return c.Request.Header.Method(), true, true
	case c != nil && kind == pwMapRequest && string(key) == ":path":
		return in.rawURI(c), true, true
	case c != nil && kind == pwMapRequest && regular:
		// A valid name is looked up by its canonical form (names.go), which is what PeekBytes
		// normalizes it to on every call; fasthttp leaves any other name as it is.
		if canon, valid := in.canon.canonical(key); valid {
			v = c.Request.Header.PeekCanonical(canon)
		} else {
			v = c.Request.Header.PeekBytes(key)
		}
		return v, v != nil, true
	case c != nil && kind == pwMapResponse && regular && in.pw.phase == phaseResponse:
		if canon, valid := in.canon.canonical(key); valid {
			v = c.Response.Header.PeekCanonical(canon)
		} else {
			v = c.Response.Header.PeekBytes(key)
		}
		return v, v != nil, true
	}
	hdrs, ok := in.pwHeaders(kind)
	if !ok {
		return nil, false, false
	}
	for _, h := range hdrs {
		if bytes.EqualFold(h[0], key) {
			return h[1], true, true
		}
	}
	return nil, false, true
}

func pwGetHeaderPairs(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	hdrs, ok := in.pwHeaders(uint32(stack[0]))
	if !ok {
		stack[0] = pwBadArgument
		return
	}
	in.pw.scratch = pwEncodePairs(in.pw.scratch[:0], hdrs)
	stack[0] = in.pwReturn(ctx, mod, in.pw.scratch, uint32(stack[1]), uint32(stack[2]))
}

func pwGetHeaderMapSize(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	hdrs, ok := in.pwHeaders(uint32(stack[0]))
	if !ok {
		stack[0] = pwBadArgument
		return
	}
	in.pw.scratch = pwEncodePairs(in.pw.scratch[:0], hdrs)
	stack[0] = pwWriteStatus(mod.Memory().WriteUint32Le(uint32(stack[1]), uint32(len(in.pw.scratch))))
}

// pwHeaderOp is one change to a header map.
type pwHeaderOp uint8

const (
	pwOpAdd pwHeaderOp = iota
	pwOpReplace
	pwOpRemove
)

// pwChangeHeader applies op to a writable header map: the request's headers in the request
// phase, the response's in the response phase. It returns a WasmResult.
func (in *instance) pwChangeHeader(kind uint32, op pwHeaderOp, name, value []byte) uint64 {
	c := in.pwRequest()
	if c == nil {
		return pwBadArgument
	}
	if len(name) > 0 && name[0] == ':' {
		return in.pwChangePseudo(c, kind, op, name, value)
	}
	e := in.canon.lookup(name) // see setHeaderValue
	if e == nil || !validValue(value) {
		return pwBadArgument
	}
	switch {
	case kind == pwMapRequest && in.pw.phase == phaseRequest:
		h := &c.Request.Header
		switch op {
		case pwOpAdd:
			h.AddBytesKV(name, value)
		case pwOpReplace:
			in.canon.setRequestHeader(h, e, value)
		default:
			h.DelBytes(name)
		}
	case kind == pwMapResponse && in.pw.phase == phaseResponse:
		h := &c.Response.Header
		switch op {
		case pwOpAdd:
			h.AddBytesKV(name, value)
		case pwOpReplace:
			in.canon.setResponseHeader(h, e, value)
		default:
			h.DelBytes(name)
		}
	case kind == pwMapResponseTrailers && in.pw.phase == phaseResponse:
		hop := opDel
		switch op {
		case pwOpAdd:
			hop = opAdd
		case pwOpReplace:
			hop = opSet
		}
		if err := applyTrailerOp(&c.Response.Header, hop, name, value); err != nil {
			return pwBadArgument
		}
	default:
		return pwBadArgument
	}
	return pwOK
}

// pwChangePseudo changes :method, :path, :authority (request phase) or :status (response phase).
func (in *instance) pwChangePseudo(c *engine.Ctx, kind uint32, op pwHeaderOp, name, value []byte) uint64 {
	if op == pwOpRemove {
		return pwBadArgument
	}
	switch {
	case kind == pwMapRequest && in.pw.phase == phaseRequest:
		switch string(name) {
		case ":method":
			if !validToken(value) {
				return pwBadArgument
			}
			c.Request.Header.SetMethodBytes(value)
		case ":path":
			if len(value) == 0 || value[0] != '/' || !validURI(value) {
				return pwBadArgument
			}
			c.Request.SetRequestURIBytes(value)
			c.Path = engine.NormalizePath(c.Path[:0], c.Request.URI().PathOriginal())
		case ":authority":
			if !validURI(value) {
				return pwBadArgument
			}
			c.Request.Header.SetHostBytes(value)
		default:
			return pwBadArgument
		}
	case kind == pwMapResponse && in.pw.phase == phaseResponse && string(name) == ":status":
		code := 0
		for _, d := range value {
			if d < '0' || d > '9' {
				return pwBadArgument
			}
			code = code*10 + int(d-'0')
		}
		if len(value) != 3 || code < 100 {
			return pwBadArgument
		}
		c.Response.SetStatusCode(code)
	default:
		return pwBadArgument
	}
	return pwOK
}

func (in *instance) pwHeaderArgs(stack []uint64, withValue bool) (name, value []byte, ok bool) {
	name, ok = in.pwRead(uint32(stack[1]), uint32(stack[2]))
	if ok && withValue {
		value, ok = in.pwRead(uint32(stack[3]), uint32(stack[4]))
	}
	return name, value, ok
}

func pwAddHeader(ctx context.Context, mod api.Module, stack []uint64) {
	pwHeaderFn(ctx, mod, stack, pwOpAdd)
}

func pwReplaceHeader(ctx context.Context, mod api.Module, stack []uint64) {
	pwHeaderFn(ctx, mod, stack, pwOpReplace)
}

func pwRemoveHeader(ctx context.Context, mod api.Module, stack []uint64) {
	pwHeaderFn(ctx, mod, stack, pwOpRemove)
}

func pwHeaderFn(ctx context.Context, mod api.Module, stack []uint64, op pwHeaderOp) {
	in := instanceOf(ctx)
	name, value, ok := in.pwHeaderArgs(stack, op != pwOpRemove)
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	stack[0] = in.pwChangeHeader(uint32(stack[0]), op, name, value)
}

func pwSetHeaderPairs(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	kind := uint32(stack[0])
	b, ok := in.pwRead(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	hdrs, ok := pwDecodePairs(b)
	if !ok {
		stack[0] = pwSerialization
		return
	}
	old, ok := in.pwHeaders(kind)
	if !ok {
		stack[0] = pwBadArgument
		return
	}
	// Remove every regular header of the map, then add the new ones (pseudo-headers replaced).
	var names [][]byte
	for _, h := range old {
		if len(h[0]) > 0 && h[0][0] != ':' {
			names = append(names, append([]byte(nil), h[0]...))
		}
	}
	for _, n := range names {
		if r := in.pwChangeHeader(kind, pwOpRemove, n, nil); r != pwOK {
			stack[0] = r
			return
		}
	}
	for _, h := range hdrs {
		op := pwOpAdd
		if len(h[0]) > 0 && h[0][0] == ':' {
			op = pwOpReplace
		}
		if r := in.pwChangeHeader(kind, op, h[0], h[1]); r != pwOK {
			stack[0] = r
			return
		}
	}
	stack[0] = pwOK
}

// Buffer types.
const (
	pwBufRequestBody  = 0
	pwBufResponseBody = 1
	pwBufCallBody     = 4
	pwBufVMConfig     = 6
	pwBufPluginConfig = 7
)

// pwBuffer returns a buffer's bytes, ok false when it is not available in this callback.
func (in *instance) pwBuffer(kind uint32) ([]byte, bool) {
	p := in.pw
	switch kind {
	case pwBufPluginConfig:
		return in.f.config, true
	case pwBufVMConfig:
		return nil, true
	case pwBufCallBody:
		if p.callResp == nil {
			return nil, false
		}
		return p.callResp.body, true
	}
	c := in.pwRequest()
	if c == nil {
		return nil, false
	}
	switch {
	case kind == pwBufRequestBody && p.phase == phaseRequest && !c.Request.IsBodyStream():
		return c.Request.Body(), true
	case kind == pwBufResponseBody && p.phase == phaseResponse && !c.Response.IsBodyStream():
		return c.Response.Body(), true
	}
	return nil, false
}

func pwGetBuffer(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	b, ok := in.pwBuffer(uint32(stack[0]))
	if !ok {
		stack[0] = pwBadArgument
		return
	}
	start, n := uint64(uint32(stack[1])), uint64(uint32(stack[2]))
	if start > uint64(len(b)) {
		stack[0] = pwBadArgument
		return
	}
	b = b[start:]
	b = b[:min(uint64(len(b)), n)]
	if len(b) == 0 {
		// As Envoy: nothing to hand over, nothing written (the AssemblyScript SDK passes a
		// size, not a pointer, as size_ptr when it reads its configuration).
		stack[0] = pwOK
		return
	}
	stack[0] = in.pwReturn(ctx, mod, b, uint32(stack[3]), uint32(stack[4]))
}

func pwGetBufferStatus(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	b, ok := in.pwBuffer(uint32(stack[0]))
	if !ok {
		stack[0] = pwBadArgument
		return
	}
	mem := mod.Memory()
	// Sluice hands a body over whole: it is always at its end.
	if !mem.WriteUint32Le(uint32(stack[1]), uint32(len(b))) || !mem.WriteUint32Le(uint32(stack[2]), 1) {
		stack[0] = pwInvalidMemory
		return
	}
	stack[0] = pwOK
}

func pwSetBuffer(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	kind := uint32(stack[0])
	data, ok := in.pwRead(uint32(stack[3]), uint32(stack[4]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	b, ok := in.pwBuffer(kind)
	if !ok || (kind != pwBufRequestBody && kind != pwBufResponseBody) {
		stack[0] = pwBadArgument
		return
	}
	start, n := uint64(uint32(stack[1])), uint64(uint32(stack[2]))
	if start > uint64(len(b)) {
		stack[0] = pwBadArgument
		return
	}
	end := min(start+n, uint64(len(b)))
	limit := in.f.lim.maxReqBody
	if kind == pwBufResponseBody {
		limit = in.f.lim.maxRespBody
	}
	size := uint64(len(b)) - (end - start) + uint64(len(data))
	if size > uint64(limit) {
		stack[0] = pwBadArgument
		return
	}
	// The new body is built apart: b and data may alias the buffer it replaces.
	nb := make([]byte, 0, size)
	nb = append(append(append(nb, b[:start]...), data...), b[end:]...)
	c := in.c
	if kind == pwBufRequestBody {
		c.Request.SetBodyRaw(nb)
	} else {
		c.Response.SetBodyRaw(nb)
	}
	stack[0] = pwOK
}

func pwGetProperty(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	path, ok := in.pwRead(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	v, found := in.pwProperty(path)
	if !found {
		stack[0] = pwNotFound
		return
	}
	stack[0] = in.pwReturn(ctx, mod, v, uint32(stack[2]), uint32(stack[3]))
}

func pwInt(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// pwProperty answers a property path (segments separated by NUL) with Envoy's encoding: strings
// raw, integers 8-byte little-endian, booleans one byte.
func (in *instance) pwProperty(path []byte) ([]byte, bool) {
	p := in.f.pw
	switch string(path) {
	case "plugin_root_id":
		return []byte(p.rootID), true
	case "plugin_name":
		return []byte(p.name), true
	case "plugin_vm_id":
		return []byte(p.vmID), true
	}
	c := in.pwRequest()
	if c == nil {
		return nil, false
	}
	seg := strings.Split(string(path), "\x00")
	if len(seg) == 3 && seg[1] == "headers" && (seg[0] == "request" || seg[0] == "response") {
		kind := uint32(pwMapRequest)
		if seg[0] == "response" {
			kind = pwMapResponse
		}
		hdrs, ok := in.pwHeaders(kind)
		if !ok {
			return nil, false
		}
		for _, h := range hdrs {
			if strings.EqualFold(string(h[0]), seg[2]) {
				return h[1], true
			}
		}
		return nil, false
	}
	req := &c.Request.Header
	switch strings.Join(seg, ".") {
	case "request.path":
		return in.rawURI(c), true
	case "request.url_path":
		path, _ := engine.RawPath(c.Request)
		return path, true
	case "request.query":
		_, q := engine.RawPath(c.Request)
		return q, true
	case "request.host":
		return req.Host(), true
	case "request.method":
		return req.Method(), true
	case "request.scheme":
		if c.Fast != nil && c.Fast.IsTLS() {
			return []byte("https"), true
		}
		return []byte("http"), true
	case "request.protocol":
		if c.Proto == "" {
			return []byte("HTTP/1.1"), true
		}
		return []byte(c.Proto), true
	case "request.referer":
		return req.Referer(), true
	case "request.useragent":
		return req.UserAgent(), true
	case "request.id":
		return req.Peek("X-Request-Id"), true
	case "request.time":
		return pwInt(c.Start.UnixNano()), true
	case "request.size":
		if c.Request.IsBodyStream() {
			// Not read in (Body would): the length the client announced, if any.
			return pwInt(max(int64(c.Request.Header.ContentLength()), 0)), true
		}
		return pwInt(int64(len(c.Request.Body()))), true
	case "response.code":
		if in.pw.phase != phaseResponse {
			return nil, false
		}
		return pwInt(int64(c.Response.StatusCode())), true
	case "response.size":
		if in.pw.phase != phaseResponse {
			return nil, false
		}
		if c.Response.IsBodyStream() {
			return pwInt(max(int64(c.Response.Header.ContentLength()), 0)), true
		}
		return pwInt(int64(len(c.Response.Body()))), true
	case "source.address":
		return []byte(in.pwSource(c).String()), true
	case "source.port":
		return pwInt(int64(in.pwSource(c).Port())), true
	case "destination.address", "destination.port":
		var ap netip.AddrPort
		if c.Fast != nil {
			if ta, ok := c.Fast.LocalAddr().(*net.TCPAddr); ok {
				ap = ta.AddrPort()
				ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			}
		}
		if seg[1] == "port" {
			return pwInt(int64(ap.Port())), true
		}
		return []byte(ap.String()), true
	case "connection.mtls":
		_, ok := engine.ClientCertKey.Get(c)
		if ok {
			return []byte{1}, true
		}
		return []byte{0}, true
	case "connection.id":
		if c.Fast != nil {
			return pwInt(int64(c.Fast.ConnID())), true
		}
		return nil, false
	case "connection.requested_server_name":
		if c.Fast != nil && c.Fast.IsTLS() {
			return []byte(c.Fast.TLSConnectionState().ServerName), true
		}
		return nil, false
	case "connection.tls_version":
		if c.Fast != nil && c.Fast.IsTLS() {
			return []byte(tlsVersionName(c.Fast.TLSConnectionState().Version)), true
		}
		return nil, false
	case "connection.subject_peer_certificate":
		if cert, ok := engine.ClientCertKey.Get(c); ok {
			return []byte(cert.Subject), true
		}
		return nil, false
	}
	return nil, false
}

func tlsVersionName(v uint16) string {
	switch v {
	case 0x0304:
		return "TLSv1.3"
	case 0x0303:
		return "TLSv1.2"
	}
	return "TLS"
}

// pwSource is the client's address and port (the port 0 behind a trusted proxy).
func (in *instance) pwSource(c *engine.Ctx) netip.AddrPort {
	var peer netip.AddrPort
	if c.Fast != nil {
		if ta, ok := c.Fast.RemoteAddr().(*net.TCPAddr); ok {
			peer = ta.AddrPort()
			peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
		}
	}
	addr := c.ClientAddr.Unmap()
	if !addr.IsValid() || addr == peer.Addr() {
		return peer
	}
	return netip.AddrPortFrom(addr, 0)
}

func pwGetSharedData(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	key, ok := in.pwRead(uint32(stack[0]), uint32(stack[1]))
	if !ok || !mod.Memory().WriteUint32Le(uint32(stack[4]), 0) {
		stack[0] = pwInvalidMemory
		return
	}
	p := in.f.pw
	p.mu.Lock()
	e := p.shared[string(key)]
	var v []byte
	var cas uint32
	if e != nil {
		v = append(in.pw.scratch[:0], e.value...)
		cas = e.cas
	}
	p.mu.Unlock()
	if e == nil {
		stack[0] = pwNotFound
		return
	}
	in.pw.scratch = v
	if r := in.pwReturn(ctx, mod, v, uint32(stack[2]), uint32(stack[3])); r != pwOK {
		stack[0] = r
		return
	}
	mod.Memory().WriteUint32Le(uint32(stack[4]), cas)
	stack[0] = pwOK
}

func pwSetSharedData(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	key, ok1 := in.pwRead(uint32(stack[0]), uint32(stack[1]))
	val, ok2 := in.pwRead(uint32(stack[2]), uint32(stack[3]))
	if !ok1 || !ok2 {
		stack[0] = pwInvalidMemory
		return
	}
	cas := uint32(stack[4])
	p := in.f.pw
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.shared[string(key)]
	if e != nil && cas != 0 && cas != e.cas {
		stack[0] = pwCasMismatch
		return
	}
	grow := len(val)
	if e == nil {
		if len(p.shared) >= pwMaxSharedKeys {
			stack[0] = pwInternalFailure
			return
		}
		grow += len(key)
	} else {
		grow -= len(e.value)
	}
	if p.sharedBytes+grow > pwMaxSharedBytes {
		stack[0] = pwInternalFailure
		return
	}
	if e == nil {
		e = &pwShared{}
		p.shared[string(key)] = e
	}
	p.sharedBytes += grow
	e.value = append(e.value[:0], val...)
	// Versions count up, never 0 (which means "no check").
	p.casSeq++
	if p.casSeq == 0 {
		p.casSeq = 1
	}
	e.cas = p.casSeq
	stack[0] = pwOK
}

func pwRegisterQueue(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	name, ok := in.pwRead(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	p := in.f.pw
	p.mu.Lock()
	token, found := p.queueByName[string(name)]
	if !found {
		if len(p.queues) >= pwMaxQueues {
			p.mu.Unlock()
			stack[0] = pwInternalFailure
			return
		}
		p.queues = append(p.queues, &pwQueue{})
		token = uint32(len(p.queues))
		p.queueByName[string(name)] = token
	}
	p.mu.Unlock()
	stack[0] = pwWriteStatus(mod.Memory().WriteUint32Le(uint32(stack[2]), token))
}

func pwResolveQueue(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	vm, ok1 := in.pwRead(uint32(stack[0]), uint32(stack[1]))
	name, ok2 := in.pwRead(uint32(stack[2]), uint32(stack[3]))
	if !ok1 || !ok2 {
		stack[0] = pwInvalidMemory
		return
	}
	p := in.f.pw
	// Queues are the filter's own: another VM's are not reachable.
	if len(vm) > 0 && string(vm) != p.vmID {
		stack[0] = pwNotFound
		return
	}
	p.mu.Lock()
	token, found := p.queueByName[string(name)]
	p.mu.Unlock()
	if !found {
		stack[0] = pwNotFound
		return
	}
	stack[0] = pwWriteStatus(mod.Memory().WriteUint32Le(uint32(stack[4]), token))
}

func (p *pwFilter) queue(token uint32) *pwQueue {
	if token == 0 || int(token) > len(p.queues) {
		return nil
	}
	return p.queues[token-1]
}

func pwDequeue(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	p := in.f.pw
	p.mu.Lock()
	q := p.queue(uint32(stack[0]))
	var item []byte
	if q != nil && len(q.items) > 0 {
		item = q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
	}
	empty := q != nil && item == nil
	p.mu.Unlock()
	switch {
	case q == nil:
		stack[0] = pwNotFound
	case empty:
		stack[0] = pwEmpty
	default:
		stack[0] = in.pwReturn(ctx, mod, item, uint32(stack[1]), uint32(stack[2]))
	}
}

func pwEnqueue(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	token := uint32(stack[0])
	data, ok := in.pwRead(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	if len(data) > pwMaxCallBodyBytes {
		stack[0] = pwBadArgument
		return
	}
	p := in.f.pw
	p.mu.Lock()
	q := p.queue(token)
	switch {
	case q == nil:
		stack[0] = pwNotFound
	case len(q.items) >= pwMaxQueueItems:
		stack[0] = pwInternalFailure
	default:
		q.items = append(q.items, append(make([]byte, 0, len(data)), data...))
		stack[0] = pwOK
	}
	p.mu.Unlock()
	if stack[0] == pwOK && !slices.Contains(in.pw.enqueued, token) {
		in.pw.enqueued = append(in.pw.enqueued, token)
	}
}

func pwHTTPCall(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	name, ok1 := in.pwRead(uint32(stack[0]), uint32(stack[1]))
	hdrBytes, ok2 := in.pwRead(uint32(stack[2]), uint32(stack[3]))
	body, ok3 := in.pwRead(uint32(stack[4]), uint32(stack[5]))
	_, ok4 := in.pwRead(uint32(stack[6]), uint32(stack[7]))
	tokenPtr := uint32(stack[9])
	if _, ok := mod.Memory().Read(tokenPtr, 4); !ok1 || !ok2 || !ok3 || !ok4 || !ok {
		stack[0] = pwInvalidMemory
		return
	}
	p := in.f.pw
	base, found := p.upstreams[string(name)]
	if !found || p.client == nil {
		in.f.log.Debug("proxy_http_call to an upstream the filter does not name", "upstream", string(name))
		stack[0] = pwBadArgument
		return
	}
	hdrs, ok := pwDecodePairs(hdrBytes)
	if !ok {
		stack[0] = pwSerialization
		return
	}
	if in.pw.pending >= pwMaxPendingCalls || len(body) > pwMaxCallBodyBytes {
		stack[0] = pwInternalFailure
		return
	}
	req := fasthttp.AcquireRequest()
	path := []byte("/")
	req.Header.SetMethod(fasthttp.MethodGet)
	var authority []byte
	for _, h := range hdrs {
		switch string(h[0]) {
		case ":path":
			path = h[1]
		case ":method":
			req.Header.SetMethodBytes(h[1])
		case ":authority":
			authority = h[1]
		case ":scheme":
		default:
			if !validToken(h[0]) || !validValue(h[1]) {
				fasthttp.ReleaseRequest(req)
				stack[0] = pwBadArgument
				return
			}
			req.Header.AddBytesKV(h[0], h[1])
		}
	}
	if len(path) == 0 || path[0] != '/' || !validURI(path) {
		fasthttp.ReleaseRequest(req)
		stack[0] = pwBadArgument
		return
	}
	req.SetRequestURI(strings.TrimRight(base, "/") + string(path))
	if len(authority) > 0 {
		req.Header.SetHostBytes(authority)
	}
	req.SetBody(body)
	timeout := time.Duration(uint32(stack[8])) * time.Millisecond
	if timeout <= 0 || timeout > pwMaxCallTimeout {
		timeout = pwMaxCallTimeout
	}
	in.pw.nextToken++
	token := in.pw.nextToken
	mod.Memory().WriteUint32Le(tokenPtr, token)
	in.pw.pending++
	go p.httpCall(in.pw.done, token, req, timeout)
	stack[0] = pwOK
}

func pwDefineMetric(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	kind := uint32(stack[0])
	name, ok := in.pwRead(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		stack[0] = pwInvalidMemory
		return
	}
	if kind > pwHistogram || len(name) == 0 || len(name) > 256 {
		stack[0] = pwBadArgument
		return
	}
	id, ok := in.f.pw.metrics.define(uint8(kind), string(name))
	if !ok {
		stack[0] = pwInternalFailure
		return
	}
	stack[0] = pwWriteStatus(mod.Memory().WriteUint32Le(uint32(stack[3]), id))
}

func pwIncrementMetric(ctx context.Context, _ api.Module, stack []uint64) {
	stack[0] = instanceOf(ctx).f.pw.metrics.increment(uint32(stack[0]), int64(stack[1]))
}

func pwRecordMetric(ctx context.Context, _ api.Module, stack []uint64) {
	stack[0] = instanceOf(ctx).f.pw.metrics.record(uint32(stack[0]), stack[1])
}

func pwGetMetric(ctx context.Context, mod api.Module, stack []uint64) {
	v, r := instanceOf(ctx).f.pw.metrics.get(uint32(stack[0]))
	if r != pwOK {
		stack[0] = r
		return
	}
	stack[0] = pwWriteStatus(mod.Memory().WriteUint64Le(uint32(stack[1]), v))
}

// pwWriteStatus is a host call's status after its last write into guest memory: OK, or
// INVALID_MEMORY when the guest's pointer was out of bounds.
func pwWriteStatus(ok bool) uint64 {
	if ok {
		return pwOK
	}
	return pwInvalidMemory
}
