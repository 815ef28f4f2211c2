package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/wasm/interrupt"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Features of the http-wasm ABI (enable_features).
const (
	featureBufferRequest  uint32 = 1
	featureBufferResponse uint32 = 2
	featureTrailers       uint32 = 4
	// A streamed request body is read in when the guest reads it or asks for buffer_request
	// (engine.Ctx.BufferBody); trailers: see trailers.go.
	supportedFeatures = featureBufferRequest | featureBufferResponse | featureTrailers
)

type phase uint8

const (
	phaseIdle     phase = iota // no request: the start function, or between requests
	phaseRequest               // inside handle_request
	phaseBetween               // handle_request returned next=1; later stages are running
	phaseResponse              // inside handle_response
)

var (
	errTimeout      = errors.New("guest exceeded its timeout")
	errPoolFull     = errors.New("all instances busy (pool_max reached) for pool_wait")
	errFilterClosed = errors.New("filter is closed")
)

// instance is one guest module instance and the state of the request it serves. It is used by one
// goroutine at a time: the pool hands it to a request, which returns it.
type instance struct {
	f       *Filter
	mod     api.Module
	memSize int64 // linear memory as last noted (usage.go)
	// memory is the guest's linear memory, the slice wazero holds (memview.go).
	memory []byte
	req    api.Function
	resp   api.Function
	// stack holds the arguments and results of a call: 2 for http-wasm, up to 5 for proxy-wasm.
	stack [5]uint64
	cc    callCtx
	// pw is the proxy-wasm state of the instance, nil for an http-wasm guest.
	pw *pwInstance

	// Deadline machinery, only when the filter has a timeout: the timer sets stop, the global
	// the interrupt package's checks read, and the guest traps at its next function entry or
	// loop head; the instance is then discarded. Around requests the timer is a watchdog (see
	// watch): a call notes its start in callStart and arms the timer only if it is not armed.
	timer   *time.Timer
	stop    api.MutableGlobal
	expired atomic.Bool
	// callStart is when the call in flight started (monotime, at least 1), 0
	// between calls, callExpired once watch stopped the call.
	callStart atomic.Int64
	// armed says the watchdog timer is pending (or about to be).
	armed atomic.Bool
	// broken marks an instance that trapped, timed out or exited: discard it, never reuse.
	broken bool
	// depth is the interrupt package's call depth count (nil for a module without the checks).
	depth api.Global
	// stopped is set when the filter closes while the instance exists (see stopAll).
	stopped atomic.Bool
	// base is the context of every call into a module without the interrupt checks: it finds
	// the instance and is cancelled when the filter closes.
	base context.Context

	// iso is the instance's snapshot with isolation = "request", else nil.
	iso *isolatedInstance

	// baseFeatures were enabled by the start function and hold for every request.
	baseFeatures uint32

	// reqState is the state of the request the instance serves (its own idle one between
	// requests). With release_between_phases a request takes its state along when it gives the
	// instance back after handle_request, and lends it to whichever instance runs
	// handle_response.
	*reqState

	skipOp  []bool
	scratch []byte
	// canon holds the canonical forms of the header names the guest sets or reads (names.go).
	canon  nameCache
	names  [][]byte
	stdout logWriter
	stderr logWriter
	// starting collects what the guest says while it starts (see startOutput); nil afterwards.
	starting *startOutput
}

// reqState is what the host keeps for one wasm filter's part in one request, reset by end.
type reqState struct {
	// in is the instance the request holds between its two phases; nil once released.
	in *instance
	// filter is the wasm filter the state belongs to, and prev the state other wasm filters
	// keep for the same request (a stack in one engine.Key, popped in the response phase's
	// reverse order).
	filter *Filter
	prev   *reqState

	c            *engine.Ctx
	phase        phase
	features     uint32
	reqCtx       uint32
	reqBodyRead  int
	respBodyRead int
	reqWritten   bool // the request body was replaced in this request
	respWritten  bool // the response body was replaced in the current phase
	// bodyErr is why a streamed request body could not be read in for read_body (the
	// client's failure: the request is answered with its status, not the guest's).
	bodyErr error

	// What the guest wrote to the response before next=1, replayed onto the upstream's
	// response (see mergeResponse). ops is a sequence of [op][u32 name len][name][u32 val len][val].
	ops       []byte
	statusSet int // status the guest set before next, 0 if none
	guestBody []byte
	bodyTaken bool
	// bigBody is this request's own buffer for a large body the guest writes (see
	// appendGuestBody); never reused by another request.
	bigBody []byte
}

// spareStates holds the idle states that instances take when a request leaves with theirs.
var spareStates = sync.Pool{New: func() any { return new(reqState) }}

// callCtx is the context.Context of every call into the guest: host functions find their
// instance through it without an allocation. It is never done: the timeout stops a guest through
// the instance's stop global, not through the context.
type callCtx struct{ in *instance }

func (c *callCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *callCtx) Done() <-chan struct{}       { return nil }

// Value answers instanceKey, for host functions called under a context derived from the
// callCtx (the start function runs under one that also carries the memory allocator).
func (c *callCtx) Value(k any) any {
	if k == (instanceKey{}) {
		return c.in
	}
	return nil
}
func (c *callCtx) Err() error {
	if c.in.expired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

// instanceKey finds the instance in a context that is not the instance's own callCtx.
type instanceKey struct{}

// instanceOf returns the instance a host function runs for.
func instanceOf(ctx context.Context) *instance {
	if cc, ok := ctx.(*callCtx); ok {
		return cc.in
	}
	if in, ok := ctx.Value(instanceKey{}).(*instance); ok {
		return in
	}
	panic(errors.New("http_handler function called outside a Sluice guest call"))
}

// newInstance instantiates the guest and runs its start functions, within load_timeout.
func (f *Filter) newInstance(ctx context.Context) (_ *instance, err error) {
	in := &instance{f: f, reqState: new(reqState)}
	in.cc.in = in
	in.starting = new(startOutput)
	in.stdout = logWriter{f: f, stream: "stdout"}
	in.stderr = logWriter{f: f, stream: "stderr", starting: in.starting}
	// Tracked from now on, so that Close stops its start function too.
	f.track(in)
	defer func() {
		if err != nil {
			f.untrack(in)
		}
	}()
	var ictx context.Context = &in.cc
	if f.lim.fallback {
		// Without the interrupt checks, wazero stops the guest when its context is done: the
		// filter's closing, or the time limit of the call.
		in.base = context.WithValue(f.lim.closing, instanceKey{}, in)
		var cancel context.CancelFunc
		ictx, cancel = context.WithTimeout(in.base, f.lim.loadTimeout)
		defer cancel()
	}
	alloc := f.memory
	if f.isolate {
		in.iso = new(isolatedInstance)
		alloc = in.iso.allocator()
	}
	ictx = experimental.WithMemoryAllocator(ictx, in.trackMemory(alloc))
	mod, err := f.rt.InstantiateModule(ictx, f.code, f.modCfg.WithStdout(&in.stdout).WithStderr(&in.stderr))
	if err != nil {
		in.stdout.flush()
		in.stderr.flush()
		if errors.Is(in.callError(err), errTimeout) {
			return nil, in.starting.wrap(fmt.Errorf("the start section's function did not finish within load_timeout (%s)", f.lim.loadTimeout))
		}
		return nil, in.starting.wrap(fmt.Errorf("instantiating the guest: %w", err))
	}
	if !f.lim.fallback {
		f.lim.mu.Lock()
		in.stop = mod.ExportedGlobal(interrupt.Global).(api.MutableGlobal)
		in.depth = mod.ExportedGlobal(interrupt.Depth)
		if in.stopped.Load() {
			in.stop.Set(1)
		}
		f.lim.mu.Unlock()
		in.timer = time.AfterFunc(f.lim.loadTimeout, in.expire)
	}
	name, err := start(ictx, mod, f.start)
	timedOut := in.timer != nil && !in.timer.Stop() || errors.Is(in.callError(err), errTimeout)
	in.stdout.flush()
	in.stderr.flush()
	said := in.starting
	in.starting, in.stderr.starting = nil, nil
	switch {
	case in.stopped.Load():
		_ = mod.Close(ctx)
		return nil, errStopped
	case timedOut:
		_ = mod.Close(ctx)
		return nil, said.wrap(fmt.Errorf("start function %s did not finish within load_timeout (%s)", name, f.lim.loadTimeout))
	case err != nil:
		_ = mod.Close(ctx)
		return nil, said.wrap(fmt.Errorf("instantiating the guest: start function %s: %w", name, in.callError(err)))
	case mod.IsClosed():
		return nil, said.wrap(fmt.Errorf("start function %s exited: the guest must stay alive after starting (build a reactor, e.g. Go -buildmode=c-shared)", name))
	}
	if in.iso != nil {
		if err := in.iso.snapshot(mod, f.globals); err != nil {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf(`isolation = "request": snapshot after the start function: %w`, err)
		}
	}
	in.timer = nil // unlimited_time: the calls run without a deadline
	if f.timeout > 0 && !f.lim.fallback {
		// The watchdog (see watch), off until a call arms it: AfterFunc starts it, Stop stops it.
		in.timer = time.AfterFunc(f.timeout, in.watch)
		in.timer.Stop()
	}
	in.mod = mod
	if f.pw != nil {
		// The root context: create it, then proxy_on_vm_start and proxy_on_configure. What
		// the guest says meanwhile is quoted if it fails, as for a start function.
		in.starting, in.stderr.starting = said, said
		err := in.pwStart()
		in.stdout.flush()
		in.stderr.flush()
		in.starting, in.stderr.starting = nil, nil
		if err != nil {
			_ = mod.Close(ctx)
			return nil, said.wrap(err)
		}
		return in, nil
	}
	in.req = mod.ExportedFunction(exportHandleRequest)
	in.resp = mod.ExportedFunction(exportHandleResponse)
	in.features = in.baseFeatures
	return in, nil
}

// start runs the module's start section function (exported under interrupt.Start when the
// module was instrumented) and then the exported start function, returning the name of the last
// one run. An exit with code 0 is not an error: it leaves the module closed, which the caller
// reports.
func start(ctx context.Context, mod api.Module, exported string) (string, error) {
	name := ""
	for _, export := range []string{interrupt.Start, exported} {
		if export == "" {
			continue
		}
		fn := mod.ExportedFunction(export)
		if fn == nil {
			continue
		}
		name = export
		if export == interrupt.Start {
			name = "(the start section's)"
		}
		if _, err := fn.Call(ctx); err != nil {
			var exit *sys.ExitError
			if errors.As(err, &exit) && exit.ExitCode() == 0 {
				return name, nil
			}
			return name, err
		}
	}
	return name, nil
}

func (in *instance) expire() {
	in.expired.Store(true)
	// The guest reads the global at its next check from another thread; wazero's Set is a plain
	// store, which the check's load sees once it reaches that core.
	in.stop.Set(1)
}

// callExpired is instance.callStart once watch stopped the call in flight.
const callExpired = -1

// watch is the deadline timer's function around requests. It stops the call in flight once it
// has run for the filter's timeout, re-arms itself for the call's deadline if it has not, and
// stays unarmed when no call is in flight (an idle instance costs no wake-ups). A call arms it
// only when it is unarmed, so a guest called many times within one timeout costs one timer
// firing, not a reset and a stop per call. The stores and loads of armed and callStart, in
// opposite orders here and in call, make sure that a call starting as the timer fires either
// arms it or is seen here, which re-arms it.
func (in *instance) watch() {
	in.armed.Store(false)
	start := in.callStart.Load()
	if start <= 0 {
		return
	}
	left := in.f.timeout - time.Duration(monotime()-start)
	if left <= 0 {
		// Exactly one of this and the call's own end (in call) takes the call.
		if in.callStart.CompareAndSwap(start, callExpired) {
			in.expire()
		}
		return
	}
	if in.armed.CompareAndSwap(false, true) {
		in.timer.Reset(left)
	}
}

// call runs fn with the instance's stack, under the filter's timeout unless unlimited_time.
func (in *instance) call(fn api.Function) error {
	if in.stopped.Load() {
		// The filter closed while this request held the instance (it outlived the drain).
		in.broken = true
		return errStopped
	}
	if in.f.lim.fallback {
		return in.callWithContext(fn)
	}
	if in.timer == nil {
		if err := fn.CallWithStack(&in.cc, in.stack[:]); err != nil {
			in.broken = true
			return in.callError(err)
		}
		return nil
	}
	// Resetting and stopping a timer around every call costs more than the call itself: the
	// call notes its start, and only an unarmed watchdog is armed (see watch).
	start := max(monotime(), 1)
	in.callStart.Store(start)
	if !in.armed.Load() && in.armed.CompareAndSwap(false, true) {
		in.timer.Reset(in.f.timeout)
	}
	err := fn.CallWithStack(&in.cc, in.stack[:])
	if !in.callStart.CompareAndSwap(start, 0) && !in.stopped.Load() {
		// The deadline passed while the guest ran (or just as it returned): it trapped at a
		// check, or will at its next call; either way the instance is done.
		in.broken = true
		return errTimeout
	}
	if err != nil {
		in.broken = true
		return in.callError(err)
	}
	return nil
}

// callWithContext runs fn in a module without the interrupt checks: wazero closes the module
// when the call's context is done (timeout, or the filter closing).
func (in *instance) callWithContext(fn api.Function) error {
	ctx := in.base
	if in.f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(in.base, in.f.timeout)
		defer cancel()
	}
	if err := fn.CallWithStack(ctx, in.stack[:]); err != nil {
		in.broken = true
		return in.callError(err)
	}
	return nil
}

// begin pins the instance to request c.
func (in *instance) begin(c *engine.Ctx) {
	in.c = c
	in.phase = phaseRequest
	in.features = in.baseFeatures
}

// end forgets the request, keeping the buffers for the next one.
func (in *instance) end() {
	// A line the guest printed without its newline is logged with its request.
	in.stdout.flush()
	in.stderr.flush()
	in.reqState.reset(in.baseFeatures)
}

// reset forgets the request, keeping the buffers for the next one.
func (rs *reqState) reset(features uint32) {
	rs.in, rs.filter, rs.prev = nil, nil, nil
	rs.c = nil
	rs.phase = phaseIdle
	rs.features = features
	rs.reqCtx = 0
	rs.reqBodyRead, rs.respBodyRead = 0, 0
	rs.reqWritten, rs.respWritten = false, false
	rs.bodyErr = nil
	rs.ops = rs.ops[:0]
	rs.statusSet = 0
	rs.guestBody = rs.guestBody[:0]
	if cap(rs.guestBody) > keepBodyBytes {
		rs.guestBody = nil // a large body the guest wrote is not kept with the instance
	}
	rs.bigBody = nil
	rs.bodyTaken = false
}

// Response operations recorded before next, to replay onto the upstream's response.
const (
	opSet byte = iota
	opAdd
	opDel
)

func (in *instance) recordOp(op byte, name, value []byte) {
	in.ops = append(in.ops, op)
	in.ops = appendField(in.ops, name)
	in.ops = appendField(in.ops, value)
}

func appendField(b, v []byte) []byte {
	n := len(v)
	b = append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	return append(b, v...)
}

func readField(b []byte) (v, rest []byte) {
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
	return b[4 : 4+n], b[4+n:]
}

// guestTouchedResponse reports whether the guest wrote any part of the response before next.
func (in *instance) guestTouchedResponse() bool {
	return len(in.ops) > 0 || in.statusSet != 0 || in.respWritten
}

// stashResponse keeps what the guest wrote to the response before next=1 and clears it from
// c.Response, so the rest of the pipeline starts from a clean response.
func (in *instance) stashResponse() {
	if !in.guestTouchedResponse() {
		return
	}
	resp := in.c.Response
	if in.respWritten {
		in.guestBody = append(in.guestBody[:0], resp.Body()...)
		in.bodyTaken = true
	}
	in.revertResponse()
}

// revertResponse undoes the guest's response writes on c.Response (for next=1, and for a
// skipped failure), keeping the response's other settings.
func (in *instance) revertResponse() {
	resp := in.c.Response
	for ops := in.ops; len(ops) > 0; {
		op := ops[0]
		var name []byte
		name, ops = readField(ops[1:])
		_, ops = readField(ops)
		if op&opTrailer != 0 {
			removeTrailer(&resp.Header, name)
		} else {
			resp.Header.DelBytes(name)
		}
	}
	if in.statusSet != 0 {
		resp.SetStatusCode(200)
	}
	if in.respWritten {
		resp.ResetBody()
	}
	in.respWritten = false
}

// mergeResponse lays what the guest wrote before next under the response the pipeline
// produced: a header the upstream also sets keeps the upstream's values, other guest headers
// are added; a status the guest set wins (as in net/http, where setting it commits the
// response head); the guest's body is used only if the upstream sent none.
func (in *instance) mergeResponse() {
	if len(in.ops) == 0 && in.statusSet == 0 && !in.bodyTaken {
		return
	}
	resp := in.c.Response
	// Decide from the upstream's headers alone, before any replayed op adds to them.
	in.skipOp = in.skipOp[:0]
	for ops := in.ops; len(ops) > 0; {
		var name []byte
		name, ops = readField(ops[1:])
		_, ops = readField(ops)
		in.skipOp = append(in.skipOp, len(resp.Header.PeekBytes(name)) > 0)
	}
	i := 0
	for ops := in.ops; len(ops) > 0; i++ {
		op := ops[0]
		var name, value []byte
		name, ops = readField(ops[1:])
		value, ops = readField(ops)
		if in.skipOp[i] {
			continue
		}
		if op&opTrailer != 0 {
			_ = applyTrailerOp(&resp.Header, op&^opTrailer, name, value) // accepted when recorded
			continue
		}
		switch op {
		case opSet:
			resp.Header.SetBytesKV(name, value)
		case opAdd:
			resp.Header.AddBytesKV(name, value)
		case opDel:
			resp.Header.DelBytes(name)
		}
	}
	// A failure later in the pipeline (the upstream down, another filter's error) keeps its
	// status: the guest's status was a default for a successful response.
	if in.statusSet != 0 && in.c.Failure == nil {
		resp.SetStatusCode(in.statusSet)
	}
	if in.bodyTaken && !resp.IsBodyStream() && len(resp.Body()) == 0 {
		resp.SetBody(in.guestBody)
	}
}
