// Package wasm implements the "wasm" filter kind: a host for the http-wasm "http-handler" ABI
// (https://http-wasm.io/http-handler-abi/) on wazero, so guests written for Traefik's or Dapr's
// http-wasm middleware run in Sluice unchanged.
//
// Each filter has its own wazero runtime (its memory cap is a runtime setting), compiles its
// module once through the process-wide compilation cache (which keeps recently used modules
// after their last filter closed: cache.go), and keeps a capped pool of instances, started as
// large as the pool of the filter it replaces on a reload (warm.go).
// A request pins one instance from handle_request to handle_response. The 19 host functions
// read and write fasthttp's buffers directly; a call into a guest allocates nothing. The module is
// first instrumented with checks that let a timer (or Close) stop the guest and that bound its call
// depth (see package interrupt); every limit has a finite default (limits.go, breaker.go).
//
// Host behaviour where the ABI leaves a choice:
//   - features: buffer_request and buffer_response are always available (fasthttp buffers both
//     bodies); trailers are response trailers (request trailers read as none and setting one
//     traps: see trailers.go).
//   - after next (in handle_response) changing the request traps; changing the response status
//     or body needs buffer_response; response headers may always be changed.
//   - what the guest wrote to the response before returning next=1 is merged with the response
//     the pipeline produces: see (*instance).mergeResponse.
//   - a trap, an exit, a host-function refusal or running past `timeout` fails that request
//     (on_error: deny answers 500, or 503 for a timeout or a full pool; skip continues without
//     the filter); the instance is discarded and replaced in the background.
package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/valyala/fasthttp"
)

// Register declares the "wasm" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "wasm", New)
}

// pinned holds, per request, the states of the wasm filters that asked for handle_response (a
// stack linked through reqState.prev: the response phase runs in reverse order, so each filter
// pops its own), with the instances they hold.
var pinned = engine.NewKey[*reqState]("wasm.request")

// Filter is a built wasm filter. It is safe for concurrent use.
type Filter struct {
	label   string
	module  string
	log     *slog.Logger
	config  []byte
	timeout time.Duration
	skip    bool
	// releaseBetween: the request gives its instance back after handle_request (see
	// Config.ReleaseBetweenPhases).
	releaseBetween bool
	poolWait       time.Duration
	poolMax        int32

	rt     wazero.Runtime
	code   wazero.CompiledModule
	modCfg wazero.ModuleConfig
	start  string
	// memory allocates the instances' linear memory; nil: wazero's default (see memoryAllocatorFor).
	memory experimental.MemoryAllocator
	// isolate restores each instance to its post-start snapshot after every request
	// (isolation = "request"); globals is how many mutable globals the module exports for it.
	isolate bool
	globals int

	pool pool
	live atomic.Int32
	// starting bounds concurrent instantiations to the core count (see grow).
	starting chan struct{}
	closed   atomic.Bool
	closeMu  sync.Mutex
	rtClose  sync.Once
	bg       sync.WaitGroup
	validate bool
	m        filterMetrics
	// slot names the filter's place in the configuration (pipeline and label) across reloads.
	slot string
	// memBytes is the live instances' linear memory (usage.go).
	memBytes atomic.Int64
	// lim holds the limits beyond the timeout: call depth, body sizes, load timeout, the
	// circuit breaker, the log rate (limits.go, breaker.go).
	lim limits
	// pw is the proxy-wasm side of a filter whose guest speaks proxy-wasm (proxywasm.go), else nil.
	pw *pwFilter
}

// New builds a wasm filter from its config: read and compile the module, check it against the
// ABI, and start pool_min instances (one when validating).
func New(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
	return build(cfg, env)
}

func build(cfg *Config, env *engine.BuildEnv) (*Filter, error) {
	ctx := context.Background()
	conf, err := cfg.guestConfig()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	bin, err := env.ReadFile(cfg.Module)
	if err != nil {
		return nil, fmt.Errorf("reading module %s: %w", cfg.Module, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	label := env.Stage
	if label == "" {
		label = "wasm"
		if cfg.Name != "" {
			label += ":" + cfg.Name
		}
	}
	f := &Filter{
		label:          label,
		module:         cfg.Module,
		log:            log,
		config:         conf,
		timeout:        cfg.Timeout.D(),
		skip:           cfg.OnError == "skip",
		releaseBetween: cfg.ReleaseBetweenPhases,
		isolate:        cfg.Isolation == isolationRequest,
		poolWait:       cfg.PoolWait.D(),
		poolMax:        int32(cfg.PoolMax),
		validate:       env.Validating,
		m:              metricsFor(env.Pipeline, label),
		starting:       make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
	}
	if env.Server != nil && !env.Validating {
		codes.setLimit(int64(env.Server.WasmCodeCacheBytes))
	}
	if f.isolate {
		if bin, err = prepareIsolation(f, bin); err != nil {
			return nil, fmt.Errorf("module %s: %w", cfg.Module, err)
		}
	}
	f.initLimits(cfg, env)
	bin, f.lim.fallback, err = instrumentModule(bin, f.lim.maxDepth)
	if f.lim.fallback {
		log.Warn("the module cannot be instrumented with interrupt checks: its time limits use wazero's close-on-context-done instead (a goroutine per call), and max_call_depth does not apply",
			"module", cfg.Module, "reason", err)
	}
	f.rt = newRuntime(ctx, int64(cfg.MemoryLimit), f.lim.fallback)
	var abi string
	f.code, f.start, abi, err = compile(ctx, f.rt, bin, cfg.ABI)
	if err != nil {
		_ = f.rt.Close(ctx)
		return nil, fmt.Errorf("module %s: %w", cfg.Module, err)
	}
	if abi == abiProxyWasm {
		if err := f.checkProxyWasmModes(); err != nil {
			f.Close()
			return nil, fmt.Errorf("module %s: %w", cfg.Module, err)
		}
		f.pw = newPWFilter(f, cfg, env)
	}
	if mem, ok := f.code.ExportedMemories()[exportMemory]; ok {
		f.memory = memoryAllocatorFor(uint64(mem.Min()) * pageSize)
	}
	// No filesystem, network, environment or arguments: a guest sees only the clocks, random
	// bytes and stdout/stderr (which go to the log).
	f.modCfg = wazero.NewModuleConfig().
		WithName("").
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	// The start functions run in newInstance, under load_timeout.
	f.modCfg = f.modCfg.WithStartFunctions()

	warm := max(cfg.PoolMin, 1)
	f.slot = slotOf(env.Pipeline, label)
	if env.Validating {
		warm = 1
	} else {
		// A reload takes over a warm pool: see warm.go.
		warm = max(warm, min(predecessorSize(f.slot), cfg.PoolMax))
	}
	if err := f.warm(ctx, warm); err != nil {
		f.Close()
		return nil, fmt.Errorf("module %s: %w", cfg.Module, err)
	}
	if !env.Validating {
		f.register()
	}
	return f, nil
}

// OnRequest pins an instance and calls handle_request.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	if f.pw != nil {
		return f.pwOnRequest(c)
	}
	if !f.lim.breaker.allow() {
		return f.rejectOpen(c)
	}
	in, err := f.acquire()
	if err != nil {
		return f.failRequest(c, nil, err)
	}
	in.begin(c)
	f.m.calls.Inc()
	// The guest sees the verified client certificate as X-Sluice-Client-Cert-* request headers
	// (no host function reads engine Keys); they are gone again before the next stage.
	cert, withCert := engine.ClientCertKey.Get(c)
	if withCert {
		engine.SetClientCertHeaders(&c.Request.Header, cert)
	}
	err = tracedCall(c, in, in.req)
	if withCert {
		engine.DelClientCertHeaders(&c.Request.Header)
	}
	if err != nil {
		if in.bodyErr != nil {
			return f.failBody(c, in)
		}
		return f.failRequest(c, in, err)
	}
	f.lim.breaker.succeeded()
	ctxNext := in.stack[0]
	if uint32(ctxNext) == 0 {
		// The guest answered (or accepts the empty 200): handle_response is not called.
		in.end()
		f.release(in)
		return engine.Respond
	}
	in.reqCtx = uint32(ctxNext >> 32)
	if in.features&featureBufferRequest != 0 && c.Request.IsBodyStream() {
		// The guest will read the request body after next, and a streamed body is gone once
		// forwarded: keep it, up to max_body_bytes (engine.Ctx.BufferBody).
		if err := c.BufferBody(0); err != nil {
			in.end()
			f.release(in)
			return c.Fail(engine.BodyErrorStatus(err), fmt.Errorf("wasm filter: buffering the request body: %w", err))
		}
	}
	in.stashResponse()
	in.phase = phaseBetween
	rs := in.reqState
	rs.filter = f
	rs.prev, _ = pinned.Get(c)
	pinned.Set(c, rs)
	if f.releaseBetween {
		// The guest correlates through reqCtx: the request keeps its state, and the instance
		// takes a spare one and serves other requests while this one is upstream.
		spare := spareStates.Get().(*reqState)
		spare.reset(in.baseFeatures)
		in.reqState = spare
		in.stdout.flush()
		in.stderr.flush()
		f.release(in)
	} else {
		rs.in = in
	}
	return engine.Continue
}

// OnResponse calls handle_response with the state this request kept, on the instance it holds or,
// with release_between_phases, on any instance, then releases the instance.
func (f *Filter) OnResponse(c *engine.Ctx) {
	if f.pw != nil {
		f.pwOnResponse(c)
		return
	}
	rs, ok := pinned.Get(c)
	if !ok || rs == nil || rs.filter != f {
		return // handle_request answered, failed or was skipped
	}
	pinned.Set(c, rs.prev)
	in := rs.in
	if in == nil {
		var err error
		if in, err = f.acquire(); err != nil {
			f.failed(err)
			c.AddFlags(failFlag(err)) // flags.go
			if !f.skip {
				c.Fail(statusFor(err), fmt.Errorf("wasm filter %s: handle_response: %w", f.label, err))
			}
			rs.reset(0)
			spareStates.Put(rs)
			return
		}
		// The instance lends its idle state to the pool of spares and serves this request's.
		spareStates.Put(in.reqState)
		in.reqState = rs
	}
	in.phase = phaseResponse
	in.mergeResponse()
	in.respWritten = false
	in.stack[0] = uint64(in.reqCtx)
	in.stack[1] = 0
	if c.Failure != nil {
		in.stack[1] = 1
	}
	f.m.calls.Inc()
	if err := tracedCall(c, in, in.resp); err != nil {
		f.failed(err)
		c.AddFlags(failFlag(err))
		if !f.skip {
			c.Fail(statusFor(err), fmt.Errorf("wasm filter %s: handle_response: %w", f.label, err))
		}
	}
	in.end()
	f.release(in)
}

// failRequest answers a request-phase failure per on_error.
func (f *Filter) failRequest(c *engine.Ctx, in *instance, err error) engine.Verdict {
	f.failed(err)
	c.AddFlags(failFlag(err))
	if in != nil {
		if f.skip {
			in.revertResponse()
		}
		in.end()
		f.release(in)
	}
	if f.skip {
		return engine.Continue
	}
	return c.Fail(statusFor(err), fmt.Errorf("wasm filter %s: %w", f.label, err))
}

// failBody answers a request whose streamed body read_body could not read in (over
// max_body_bytes, a client that stalled or went away) with the body's status (413, 408, 400):
// the client's failure, not the guest's, so on_error, the breaker and the trap count do not
// apply. The instance stopped mid-call and is discarded as after any trap.
func (f *Filter) failBody(c *engine.Ctx, in *instance) engine.Verdict {
	err := in.bodyErr
	in.end()
	f.release(in)
	c.AddFlags(engine.BodyErrorFlags(err))
	return c.Fail(engine.BodyErrorStatus(err), fmt.Errorf("wasm filter %s: reading the request body: %w", f.label, err))
}

func statusFor(err error) int {
	if errors.Is(err, errTimeout) || errors.Is(err, errPoolFull) || errors.Is(err, errStopped) ||
		errors.Is(err, errFilterClosed) {
		return fasthttp.StatusServiceUnavailable
	}
	return fasthttp.StatusInternalServerError
}

// failed counts and logs a failed call (within log_lines_per_second), and counts a guest's
// failure towards the circuit breaker.
func (f *Filter) failed(err error) {
	if guestFault(err) {
		f.lim.breaker.failed()
	}
	switch {
	case errors.Is(err, errTimeout):
		f.m.timeouts.Inc()
		f.logFailure(slog.LevelWarn, "wasm guest stopped at its timeout", "module", f.module, "timeout", f.timeout, "on_error", f.onError())
	case errors.Is(err, errPoolFull):
		f.m.poolFull.Inc()
		f.logFailure(slog.LevelWarn, "wasm pool exhausted", "pool_max", f.poolMax, "pool_wait", f.poolWait, "on_error", f.onError())
	case errors.Is(err, errFilterClosed), errors.Is(err, errStopped):
		// A request that outlived the drain of a reload or shutdown.
		f.logFailure(slog.LevelWarn, "wasm filter closed under a request", "module", f.module, "err", err, "on_error", f.onError())
	default:
		f.m.traps.Inc()
		f.logFailure(slog.LevelWarn, "wasm guest failed", "module", f.module, "err", err, "on_error", f.onError())
	}
}

// Close closes the idle instances, and the runtime and compiled module (dropping its reference
// in the compilation cache) once no request holds an instance: closing a runtime under a guest
// that is still running would pull its memory from under it. A request that still holds one
// (a drain that timed out) finishes on it; the last release closes the runtime. Requests after
// Close get an error.
func (f *Filter) Close() error {
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	if f.closed.Swap(true) {
		return nil
	}
	f.unregister()
	if f.pw != nil {
		f.pw.close()
	}
	// Whatever the guests are doing, they stop now: an instance starting in the background, a
	// request that outlived the drain.
	f.stopAll()
	f.bg.Wait()
	if f.pw != nil {
		f.pw.waitTick()
	}
	f.lim.guestLog.flushSuppressed()
	f.lim.failLog.flushSuppressed()
	for _, in := range f.pool.drain() {
		f.discard(in)
	}
	return f.closeRuntimeIfUnused()
}

// closeRuntimeIfUnused closes the runtime and the compiled module once the filter is closed and
// no instance exists. Instance creation racing it fails cleanly on the closed runtime.
func (f *Filter) closeRuntimeIfUnused() error {
	if !f.closed.Load() || f.live.Load() != 0 {
		return nil
	}
	var err error
	f.rtClose.Do(func() {
		ctx := context.Background()
		err = f.rt.Close(ctx)
		if f.code != nil {
			// Kept by the compiled-code cache for a reload that comes back to this module.
			err = errors.Join(err, codes.release(f.code, true))
		}
	})
	return err
}

// Label is the filter's name in logs and metrics ("wasm:NAME").
func (f *Filter) Label() string { return f.label }
