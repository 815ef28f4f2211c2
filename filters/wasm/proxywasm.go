package wasm

// The proxy-wasm ABI (v0.2.0 and v0.2.1, https://github.com/proxy-wasm/spec), the second ABI the
// wasm filter speaks, for filters written for Envoy, Istio, APISIX or Kong's WasmX. It shares the
// http-wasm host's compilation, module cache, pool, limits, interrupt rewrite, circuit breaker and
// reload handling: only the calls into the guest and the host functions differ.
//
// Mapping onto Sluice's phases (sdk/ABI.md has the table):
//   - each instance has one root context (id 1), created when the instance starts, followed by
//     proxy_on_vm_start and proxy_on_configure with the filter's config;
//   - a request gets an HTTP context on the instance it pins: in the request phase
//     proxy_on_request_headers, then proxy_on_request_body once with the whole body and
//     end_of_stream = 1 (a streamed request body is read in first, up to max_body_bytes); in the
//     response phase proxy_on_response_headers, proxy_on_response_body (once, whole, unless the
//     response streams past max_response_bytes) and proxy_on_response_trailers when there are
//     trailers; then proxy_on_done, proxy_on_log and proxy_on_delete;
//   - Pause: a paused request keeps its instance while its proxy_http_calls are answered
//     (proxy_on_http_call_response on the root context), until the guest resumes it
//     (proxy_continue_stream) or answers it (proxy_send_local_response). Paused requests count
//     against pool_max like running ones: more of them queue for pool_wait, then fail with 503.
//   - proxy_on_tick runs on each idle instance's root context at the period the guest set.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/valyala/fasthttp"
)

// Bounds on what a proxy-wasm guest may hold in the host (each a finite default; see README).
const (
	pwMaxSharedKeys      = 4096
	pwMaxSharedBytes     = 4 << 20 // keys and values of one filter's shared data
	pwMaxQueues          = 64
	pwMaxQueueItems      = 1024 // per queue; enqueueing more fails with InternalFailure
	pwMaxMetrics         = 256
	pwMaxPendingCalls    = 16 // proxy_http_calls in flight per instance
	pwMaxCallBodyBytes   = 1 << 20
	pwMaxCallTimeout     = 30 * time.Second
	pwMinTick            = 10 * time.Millisecond
	pwRootContext        = 1
	pwModuleEnv          = "env"
	pwModuleWASIUnstable = "wasi_unstable"
)

// proxy-wasm WasmResult codes.
const (
	pwOK              = 0
	pwNotFound        = 1
	pwBadArgument     = 2
	pwSerialization   = 3
	pwInvalidMemory   = 6
	pwEmpty           = 7
	pwCasMismatch     = 8
	pwInternalFailure = 10
	pwUnimplemented   = 12
)

// Actions a callback returns.
const (
	pwContinue = 0
	pwPause    = 1
)

// Stream types of proxy_continue_stream.
const (
	pwStreamRequest  = 0
	pwStreamResponse = 1
)

// pwFilter is what all instances of one proxy-wasm filter share: the configuration the guest
// reads, the shared data and queues, the metrics it defined, the upstreams proxy_http_call may
// reach and the tick.
type pwFilter struct {
	f       *Filter
	rootID  string
	vmID    string
	name    string
	hasBody struct{ req, resp bool }

	upstreams map[string]string
	client    *fasthttp.Client

	mu          sync.Mutex
	shared      map[string]*pwShared
	sharedBytes int
	casSeq      uint32
	queues      []*pwQueue
	queueByName map[string]uint32
	metrics     pwMetrics

	tickPeriod atomic.Int64 // nanoseconds; 0: no tick
	// The tick loop starts with the first period a guest sets, unless the filter closed; close
	// stops it and waitTick waits for it to end.
	tickMu     sync.Mutex
	tickClosed bool
	tickStop   chan struct{}
	tickDone   chan struct{}
}

type pwShared struct {
	value []byte
	cas   uint32
}

type pwQueue struct {
	items [][]byte
}

func newPWFilter(f *Filter, cfg *Config, env *engine.BuildEnv) *pwFilter {
	exports := f.code.ExportedFunctions()
	p := &pwFilter{
		f:           f,
		rootID:      cfg.RootID,
		vmID:        cfg.VMID,
		name:        cfg.Name,
		upstreams:   cfg.Upstreams,
		shared:      map[string]*pwShared{},
		queueByName: map[string]uint32{},
		tickStop:    make(chan struct{}),
	}
	_, p.hasBody.req = exports["proxy_on_request_body"]
	_, p.hasBody.resp = exports["proxy_on_response_body"]
	p.metrics.init(env.Pipeline, f.label)
	if len(p.upstreams) > 0 {
		p.client = &fasthttp.Client{
			Name:                "sluice-proxy-wasm",
			MaxResponseBodySize: pwMaxCallBodyBytes,
			MaxConnsPerHost:     64,
			ReadTimeout:         pwMaxCallTimeout,
			WriteTimeout:        pwMaxCallTimeout,
		}
	}
	return p
}

// close stops the tick, drops the filter's hold on its metrics and idle call connections.
func (p *pwFilter) close() {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	if p.tickClosed {
		return
	}
	p.tickClosed = true
	close(p.tickStop)
	p.metrics.unregister()
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
}

// waitTick waits for the tick loop to end, once close has stopped it and the guests were
// stopped (a tick may be running a guest).
func (p *pwFilter) waitTick() {
	p.tickMu.Lock()
	done := p.tickDone
	p.tickMu.Unlock()
	if done != nil {
		<-done
	}
}

// validateProxyWasm checks the proxy-wasm attributes.
func (c *Config) validateProxyWasm() []error {
	var errs []error
	switch c.ABI {
	case "", abiHTTPWasm, abiProxyWasm:
	default:
		errs = append(errs, engine.FieldErr("abi", `must be "http-wasm" or "proxy-wasm" (or unset: detected from the module's exports), got %q`, c.ABI))
	}
	if c.ABI == abiHTTPWasm && (c.RootID != "" || c.VMID != "" || len(c.Upstreams) > 0) {
		errs = append(errs, engine.FieldErr("abi", "root_id, vm_id and upstreams are proxy-wasm settings; an http-wasm guest has no use for them"))
	}
	names := make([]string, 0, len(c.Upstreams))
	for name := range c.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		u := c.Upstreams[name]
		var uri fasthttp.URI
		if err := uri.Parse(nil, []byte(u)); err != nil || (string(uri.Scheme()) != "http" && string(uri.Scheme()) != "https") || len(uri.Host()) == 0 {
			errs = append(errs, engine.FieldErr("upstreams", "%q: %q is not an http:// or https:// base URL", name, u))
		}
	}
	return errs
}

// Proxy-wasm modules get their own checks: the isolation and release_between_phases modes keep
// no request's context on one instance, which a proxy-wasm guest needs (its context map lives in
// its memory).
func (f *Filter) checkProxyWasmModes() error {
	if f.isolate {
		return errors.New(`isolation = "request" is not available for proxy-wasm guests: their root context (configuration, shared state the SDKs keep) lives in the instance's memory across requests`)
	}
	if f.releaseBetween {
		return errors.New("release_between_phases is not available for proxy-wasm guests: a request's HTTP context lives in its instance's memory until proxy_on_delete")
	}
	return nil
}

// checkProxyWasm checks a proxy-wasm module's exports and imports and instantiates the host
// modules it imports. It returns the start function (_initialize, else _start; "" if none).
func checkProxyWasm(ctx context.Context, rt wazero.Runtime, code wazero.CompiledModule) (string, error) {
	var errs []error
	exports := code.ExportedFunctions()
	if _, ok := code.ExportedMemories()[exportMemory]; !ok {
		errs = append(errs, errors.New(`does not export its memory as "memory" (the proxy-wasm ABI reads and writes guest memory)`))
	}
	_, m1 := exports["malloc"]
	_, m2 := exports["proxy_on_memory_allocate"]
	if !m1 && !m2 {
		errs = append(errs, errors.New("exports neither proxy_on_memory_allocate nor malloc: the host cannot hand the guest any data"))
	}
	for name, sig := range pwCallbacks {
		if fn, ok := exports[name]; ok && (!slices.Equal(fn.ParamTypes(), sig.params) || !slices.Equal(fn.ResultTypes(), sig.results)) {
			errs = append(errs, fmt.Errorf("exports %s%s, want %s%s", name, signature(fn.ParamTypes(), fn.ResultTypes()), name, signature(sig.params, sig.results)))
		}
	}
	start := ""
	for _, name := range []string{exportInitialize, exportStart} {
		if _, ok := exports[name]; ok {
			start = name
			break
		}
	}
	for _, m := range code.ImportedMemories() {
		mod, name, _ := m.Import()
		errs = append(errs, fmt.Errorf("imports memory %s.%s, but the host offers none: the guest must define and export its own memory", mod, name))
	}
	needs := map[string]bool{}
	for _, fn := range code.ImportedFunctions() {
		mod, _, _ := fn.Import()
		needs[mod] = true
	}
	if needs[wasi_snapshot_preview1.ModuleName] && rt.Module(wasi_snapshot_preview1.ModuleName) == nil {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			return "", fmt.Errorf("instantiating WASI: %w", err)
		}
	}
	if needs[pwModuleEnv] && rt.Module(pwModuleEnv) == nil {
		if err := instantiatePWHost(ctx, rt); err != nil {
			return "", fmt.Errorf("instantiating the proxy-wasm host module: %w", err)
		}
	}
	if needs[pwModuleWASIUnstable] && rt.Module(pwModuleWASIUnstable) == nil {
		if err := instantiateWASIUnstable(ctx, rt); err != nil {
			return "", fmt.Errorf("instantiating wasi_unstable: %w", err)
		}
	}
	for _, fn := range code.ImportedFunctions() {
		errs = append(errs, checkPWImport(rt, fn))
	}
	return start, joinProblems(errs)
}

func checkPWImport(rt wazero.Runtime, fn api.FunctionDefinition) error {
	mod, name, _ := fn.Import()
	var have api.FunctionDefinition
	switch mod {
	case pwModuleEnv, wasi_snapshot_preview1.ModuleName, pwModuleWASIUnstable:
		if m := rt.Module(mod); m != nil {
			have = m.ExportedFunctionDefinitions()[name]
		}
	default:
		return fmt.Errorf("imports %s.%s, but a proxy-wasm guest may import only the env (proxy_*), %s and %s modules",
			mod, name, wasi_snapshot_preview1.ModuleName, pwModuleWASIUnstable)
	}
	if have == nil {
		if mod == pwModuleEnv {
			if near := nearest(name, pwHostFunctionNames()); near != "" {
				return fmt.Errorf("imports %s.%s, which is not a proxy-wasm host function (did you mean %s?)", mod, name, near)
			}
			return fmt.Errorf("imports %s.%s, which is not a proxy-wasm host function Sluice knows", mod, name)
		}
		return fmt.Errorf("imports %s.%s, which the host does not provide", mod, name)
	}
	if !slices.Equal(fn.ParamTypes(), have.ParamTypes()) || !slices.Equal(fn.ResultTypes(), have.ResultTypes()) {
		return fmt.Errorf("imports %s.%s as %s, but the host defines it as %s", mod, name,
			signature(fn.ParamTypes(), fn.ResultTypes()), signature(have.ParamTypes(), have.ResultTypes()))
	}
	return nil
}

type pwSig struct{ params, results []api.ValueType }

func sig(params, results string) pwSig {
	conv := func(s string) []api.ValueType {
		out := make([]api.ValueType, len(s))
		for i, c := range s {
			out[i] = i32
			if c == 'I' {
				out[i] = i64
			}
		}
		return out
	}
	return pwSig{conv(params), conv(results)}
}

// pwCallbacks are the guest exports the host calls, with their types (checked at load).
var pwCallbacks = map[string]pwSig{
	"proxy_on_context_create":     sig("ii", ""),
	"proxy_on_vm_start":           sig("ii", "i"),
	"proxy_on_configure":          sig("ii", "i"),
	"proxy_on_tick":               sig("i", ""),
	"proxy_on_queue_ready":        sig("ii", ""),
	"proxy_on_request_headers":    sig("iii", "i"),
	"proxy_on_request_body":       sig("iii", "i"),
	"proxy_on_request_trailers":   sig("ii", "i"),
	"proxy_on_response_headers":   sig("iii", "i"),
	"proxy_on_response_body":      sig("iii", "i"),
	"proxy_on_response_trailers":  sig("ii", "i"),
	"proxy_on_http_call_response": sig("iiiii", ""),
	"proxy_on_done":               sig("i", "i"),
	"proxy_on_log":                sig("i", ""),
	"proxy_on_delete":             sig("i", ""),
	"proxy_on_memory_allocate":    sig("i", "i"),
	"malloc":                      sig("i", "i"),
}

// pwCallback names a guest callback the host calls per request: an index into
// pwInstance.fns, so that a call finds its function without hashing its name.
type pwCallback uint8

const (
	pwOnContextCreate pwCallback = iota
	pwOnVMStart
	pwOnConfigure
	pwOnTick
	pwOnQueueReady
	pwOnRequestHeaders
	pwOnRequestBody
	pwOnRequestTrailers
	pwOnResponseHeaders
	pwOnResponseBody
	pwOnResponseTrailers
	pwOnHTTPCallResponse
	pwOnDone
	pwOnLog
	pwOnDelete
	pwNumCallbacks
)

// pwCallbackNames are the exports of the pwCallbacks, by index.
var pwCallbackNames = [pwNumCallbacks]string{
	pwOnContextCreate:    "proxy_on_context_create",
	pwOnVMStart:          "proxy_on_vm_start",
	pwOnConfigure:        "proxy_on_configure",
	pwOnTick:             "proxy_on_tick",
	pwOnQueueReady:       "proxy_on_queue_ready",
	pwOnRequestHeaders:   "proxy_on_request_headers",
	pwOnRequestBody:      "proxy_on_request_body",
	pwOnRequestTrailers:  "proxy_on_request_trailers",
	pwOnResponseHeaders:  "proxy_on_response_headers",
	pwOnResponseBody:     "proxy_on_response_body",
	pwOnResponseTrailers: "proxy_on_response_trailers",
	pwOnHTTPCallResponse: "proxy_on_http_call_response",
	pwOnDone:             "proxy_on_done",
	pwOnLog:              "proxy_on_log",
	pwOnDelete:           "proxy_on_delete",
}

func (cb pwCallback) String() string { return pwCallbackNames[cb] }

// pwInstance is the proxy-wasm state of one instance: its callbacks, and the HTTP context of the
// request it serves.
type pwInstance struct {
	fns [pwNumCallbacks]api.Function
	// alloc is proxy_on_memory_allocate (v0.2.1) or malloc (v0.2.0).
	alloc      api.Function
	allocStack [1]uint64
	nextCtx    uint32

	// The request's HTTP context (0 between requests) and what the guest did in the callback.
	ctxID     uint32
	effective uint32
	resumed   [2]bool // proxy_continue_stream per stream type
	local     bool    // proxy_send_local_response answered the request
	phase     phase

	// Calls in flight (proxy_http_call), answered through done.
	nextToken uint32
	pending   int
	done      chan pwCallResult
	callResp  *pwCallResult // the response proxy_on_http_call_response is being told about
	// enqueued lists the queues the current callback enqueued to, told with proxy_on_queue_ready
	// once it returns.
	enqueued []uint32
	scratch  []byte
}

type pwCallResult struct {
	token   uint32
	headers [][2][]byte
	body    []byte
	err     error
}

// pwStart looks up the instance's callbacks and runs its root context's start: create it,
// proxy_on_vm_start, proxy_on_configure. A guest that answers false fails the instance.
func (in *instance) pwStart() error {
	p := &pwInstance{nextCtx: pwRootContext + 1, done: make(chan pwCallResult, pwMaxPendingCalls)}
	for cb, name := range pwCallbackNames {
		p.fns[cb] = in.mod.ExportedFunction(name)
	}
	p.alloc = in.mod.ExportedFunction("proxy_on_memory_allocate")
	if p.alloc == nil {
		p.alloc = in.mod.ExportedFunction("malloc")
	}
	in.pw = p
	if err := in.pwCall(pwOnContextCreate, pwRootContext, 0); err != nil {
		return fmt.Errorf("creating the root context: %w", err)
	}
	if fn := p.fns[pwOnVMStart]; fn != nil {
		if err := in.pwCall(pwOnVMStart, pwRootContext, 0); err != nil {
			return fmt.Errorf("proxy_on_vm_start: %w", err)
		}
		if uint32(in.stack[0]) == 0 {
			return errors.New("proxy_on_vm_start answered false: the guest refused to start")
		}
	}
	if fn := p.fns[pwOnConfigure]; fn != nil {
		if err := in.pwCall(pwOnConfigure, pwRootContext, uint64(len(in.f.config))); err != nil {
			return fmt.Errorf("proxy_on_configure: %w", err)
		}
		if uint32(in.stack[0]) == 0 {
			return errors.New("proxy_on_configure answered false: the guest refused its config")
		}
	}
	// Calls the root context made while starting are answered before it serves a request.
	if err := in.pwDrainCalls(); err != nil {
		return err
	}
	return nil
}

// pwCall calls a guest callback (doing nothing when the guest does not export it) with args,
// under the filter's timeout; the result is in.stack[0].
func (in *instance) pwCall(cb pwCallback, args ...uint64) error {
	fn := in.pw.fns[cb]
	if fn == nil {
		in.stack[0] = 0
		return nil
	}
	copy(in.stack[:], args)
	err := in.call(fn)
	if err == nil && len(in.pw.enqueued) > 0 && cb != pwOnQueueReady {
		// The queue callbacks use the stack: keep this callback's result.
		result := in.stack[0]
		err = in.pwTellQueues()
		in.stack[0] = result
	}
	return err
}

// pwTellQueues calls proxy_on_queue_ready for each queue the last callback enqueued to, on this
// instance's root context (the guest that registered the queue is the same module).
func (in *instance) pwTellQueues() error {
	for len(in.pw.enqueued) > 0 {
		q := in.pw.enqueued[0]
		in.pw.enqueued = in.pw.enqueued[1:]
		if err := in.pwCall(pwOnQueueReady, pwRootContext, uint64(q)); err != nil {
			in.pw.enqueued = in.pw.enqueued[:0]
			return err
		}
	}
	in.pw.enqueued = in.pw.enqueued[:0]
	return nil
}

// pwDrainCalls waits for every proxy_http_call in flight and tells the root context about each.
func (in *instance) pwDrainCalls() error {
	for in.pw.pending > 0 {
		if err := in.pwAnswerOne(); err != nil {
			return err
		}
	}
	return nil
}

// pwAnswerOne waits for the next proxy_http_call to answer (each is bounded by its timeout) and
// calls proxy_on_http_call_response with it.
func (in *instance) pwAnswerOne() error {
	p := in.pw
	var r pwCallResult
	select {
	case r = <-p.done:
	case <-in.f.lim.closing.Done():
		in.broken = true
		return errStopped
	}
	p.pending--
	nh := 0
	if r.err == nil {
		nh = len(r.headers)
	} else {
		in.f.log.Debug("proxy_http_call failed", "err", r.err)
	}
	p.callResp = &r
	err := in.pwCall(pwOnHTTPCallResponse, pwRootContext, uint64(r.token), uint64(nh), uint64(len(r.body)), 0)
	p.callResp = nil
	return err
}

// pwRun runs one request callback and, when it pauses, answers its calls until the guest resumes
// or answers the request. It reports whether the request was answered locally. more says a body
// callback follows in this phase: a pause with nothing in flight then waits for it, as Envoy
// buffers the headers until the body comes.
func (in *instance) pwRun(stream int, more bool, cb pwCallback, args ...uint64) (bool, error) {
	p := in.pw
	p.resumed[stream] = false
	if err := in.pwCall(cb, args...); err != nil {
		return false, err
	}
	action := uint32(in.stack[0])
	for !p.local && action != pwContinue && !p.resumed[stream] {
		if p.pending == 0 {
			if more {
				return false, nil
			}
			return false, fmt.Errorf("%s paused the request with no proxy_http_call in flight that could resume it", cb)
		}
		if err := in.pwAnswerOne(); err != nil {
			return false, err
		}
	}
	return p.local, nil
}

// pwOnRequest runs a request's proxy-wasm request phase.
func (f *Filter) pwOnRequest(c *engine.Ctx) engine.Verdict {
	if !f.lim.breaker.allow() {
		return f.rejectOpen(c)
	}
	in, err := f.acquire()
	if err != nil {
		return f.failRequest(c, nil, err)
	}
	in.begin(c)
	p := in.pw
	p.phase = phaseRequest
	p.ctxID = p.nextCtx
	p.effective = p.ctxID
	p.nextCtx++
	if p.nextCtx == 0 {
		p.nextCtx = pwRootContext + 1
	}
	f.m.calls.Inc()
	if err := in.pwCall(pwOnContextCreate, uint64(p.ctxID), pwRootContext); err != nil {
		return f.pwFail(c, in, err)
	}
	// IsBodyStream first: Body() would read a streamed body whole, past max_body_bytes.
	hasBody := c.Request.IsBodyStream() || len(c.Request.Body()) > 0
	if hasBody && f.pw.hasBody.req && c.Request.IsBodyStream() {
		// proxy_on_request_body gets the whole body at once: read a streamed one in, up to
		// max_body_bytes.
		if err := c.BufferBody(0); err != nil {
			in.pwFinish(false)
			f.release(in)
			return c.Fail(engine.BodyErrorStatus(err), fmt.Errorf("wasm filter %s: buffering the request body: %w", f.label, err))
		}
		hasBody = len(c.Request.Body()) > 0
	}
	eos := uint64(1)
	if hasBody {
		eos = 0
	}
	bodyNext := hasBody && f.pw.hasBody.req
	local, err := in.pwRun(pwStreamRequest, bodyNext, pwOnRequestHeaders, uint64(p.ctxID), uint64(pwHeaderCount(c, 0)), eos)
	if err == nil && !local && bodyNext {
		local, err = in.pwRun(pwStreamRequest, false, pwOnRequestBody, uint64(p.ctxID), uint64(len(c.Request.Body())), 1)
	}
	if err != nil {
		return f.pwFail(c, in, err)
	}
	f.lim.breaker.succeeded()
	if local {
		if err := in.pwFinish(true); err != nil {
			f.failed(err)
		}
		f.release(in)
		return engine.Respond
	}
	p.phase = phaseBetween
	rs := in.reqState
	rs.filter = f
	rs.in = in
	rs.prev, _ = pinned.Get(c)
	pinned.Set(c, rs)
	return engine.Continue
}

// pwOnResponse runs the response phase on the instance the request pinned, then ends the HTTP
// context and releases the instance.
func (f *Filter) pwOnResponse(c *engine.Ctx) {
	rs, ok := pinned.Get(c)
	if !ok || rs == nil || rs.filter != f {
		return
	}
	pinned.Set(c, rs.prev)
	in := rs.in
	p := in.pw
	p.phase = phaseResponse
	in.phase = phaseResponse
	f.m.calls.Inc()
	resp := c.Response
	streamed := resp.IsBodyStream()
	hasBody := !streamed && len(resp.Body()) > 0
	eos := uint64(1)
	if hasBody || streamed {
		eos = 0
	}
	bodyNext := hasBody && f.pw.hasBody.resp
	local, err := in.pwRun(pwStreamResponse, bodyNext, pwOnResponseHeaders, uint64(p.ctxID), uint64(pwHeaderCount(c, 2)), eos)
	if err == nil && !local && bodyNext {
		local, err = in.pwRun(pwStreamResponse, false, pwOnResponseBody, uint64(p.ctxID), uint64(len(resp.Body())), 1)
	}
	if err == nil && !local {
		if n := len(trailerNames(nil, &resp.Header)); n > 0 {
			_, err = in.pwRun(pwStreamResponse, false, pwOnResponseTrailers, uint64(p.ctxID), uint64(n))
		}
	}
	if err == nil {
		err = in.pwFinish(true)
	}
	if err != nil {
		f.failed(err)
		if !f.skip {
			c.Fail(statusFor(err), fmt.Errorf("wasm filter %s: proxy-wasm response phase: %w", f.label, err))
		}
	} else {
		f.lim.breaker.succeeded()
	}
	in.end()
	in.pwReset()
	f.release(in)
}

// pwFail fails a request-phase callback per on_error.
func (f *Filter) pwFail(c *engine.Ctx, in *instance, err error) engine.Verdict {
	if in.bodyErr != nil {
		in.pwReset()
		return f.failBody(c, in)
	}
	in.pwReset()
	return f.failRequest(c, in, err)
}

// pwFinish answers the calls still in flight and ends the HTTP context: proxy_on_done,
// proxy_on_log, proxy_on_delete (only when the guest is healthy).
func (in *instance) pwFinish(callGuest bool) error {
	defer in.pwReset()
	if !callGuest || in.broken {
		return nil
	}
	p := in.pw
	if err := in.pwDrainCalls(); err != nil {
		return err
	}
	id := uint64(p.ctxID)
	for _, cb := range [...]pwCallback{pwOnDone, pwOnLog, pwOnDelete} {
		if err := in.pwCall(cb, id); err != nil {
			return err
		}
	}
	return nil
}

// pwReset forgets the request's HTTP context.
func (in *instance) pwReset() {
	p := in.pw
	p.ctxID, p.effective = 0, 0
	p.resumed = [2]bool{}
	p.local = false
	p.phase = phaseIdle
	if p.pending > 0 {
		// Calls of a request that failed: their answers go to the old channel (buffered, so
		// the calls end without a reader) and the next request starts with a fresh one.
		p.done = make(chan pwCallResult, pwMaxPendingCalls)
		p.pending = 0
	}
}

// pwHeaderCount is the number of pairs proxy_get_header_map_pairs would return for kind.
func pwHeaderCount(c *engine.Ctx, kind uint32) int {
	if kind == 0 {
		return c.Request.Header.Len() + 4 // the pseudo-headers :method :path :authority :scheme
	}
	return c.Response.Header.Len() + 1 // :status
}

// startTick starts the filter's tick loop once a guest set a period.
func (p *pwFilter) startTick() {
	if p.f.validate {
		return
	}
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	if p.tickClosed || p.tickDone != nil {
		return
	}
	p.tickDone = make(chan struct{})
	go p.tickLoop()
}

// tickLoop calls proxy_on_tick on each idle instance's root context every period. An instance a
// request holds is skipped that round (its root context ticks at the next one it is idle).
func (p *pwFilter) tickLoop() {
	defer close(p.tickDone)
	t := time.NewTimer(time.Duration(p.tickPeriod.Load()))
	defer t.Stop()
	for {
		select {
		case <-p.tickStop:
			return
		case <-p.f.lim.closing.Done():
			return
		case <-t.C:
		}
		// One instance at a time leaves the pool: the least recently used goes, is ticked and
		// comes back on top, so after n rounds each of the n idle instances has ticked once.
		for n := p.f.pool.idleCount(); n > 0; n-- {
			in := p.f.pool.getOldest()
			if in == nil {
				break
			}
			if p.f.closed.Load() {
				p.f.discard(in)
				continue
			}
			in.phase = phaseIdle
			err := in.pwCall(pwOnTick, pwRootContext)
			if err == nil {
				err = in.pwDrainCalls()
			}
			if err != nil {
				p.f.failed(fmt.Errorf("proxy_on_tick: %w", err))
			}
			p.f.release(in)
		}
		d := time.Duration(p.tickPeriod.Load())
		if d <= 0 {
			d = time.Second // the guest turned the tick off: look again later
		}
		t.Reset(d)
	}
}

// httpCall runs one proxy_http_call and sends its answer to done.
func (p *pwFilter) httpCall(done chan<- pwCallResult, token uint32, req *fasthttp.Request, timeout time.Duration) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	r := pwCallResult{token: token}
	if p.f.validate {
		// sluice validate dials nothing: the call fails as an unreachable service would.
		r.err = errors.New("no calls while validating")
	} else if err := p.client.DoTimeout(req, resp, timeout); err != nil {
		r.err = err
	} else {
		r.headers = append(r.headers, [2][]byte{[]byte(":status"), fmt.Appendf(nil, "%d", resp.StatusCode())})
		for k, v := range resp.Header.All() {
			r.headers = append(r.headers, [2][]byte{[]byte(strings.ToLower(string(k))), append([]byte(nil), v...)})
		}
		r.body = append([]byte(nil), resp.Body()...)
	}
	fasthttp.ReleaseRequest(req)
	done <- r // buffered for pwMaxPendingCalls: never blocks
}
