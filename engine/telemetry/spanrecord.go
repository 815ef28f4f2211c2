package telemetry

import (
	"context"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// spanRecord is one span the observer records (a server span, a filter phase's span, an upstream
// attempt's client span). The SDK's spans cost about a dozen allocations each (the span, its
// attribute slices, the context holding it, a copy per snapshot); a record is pooled and reused
// whole: its attribute array, its string arena and the context that carries it are kept from one
// use to the next, so recording a span allocates nothing in the steady state.
//
// A record is a trace.Span while its request runs (filters reach it through c.Context: a Wasm
// guest's log lines become its events, spans started with the OpenTelemetry API nest under it)
// and an sdktrace.ReadOnlySpan once it has ended, so the span batcher and exporters take it as
// they take the SDK's spans. It goes back to the pool once its batch has been exported.
//
// Like the request that owns it, a record is used by one goroutine at a time: the request's
// until End, the batcher's afterwards.
type spanRecord struct {
	// The fields are ordered by use: those every span reads or writes on the request path and in
	// the exporter first, in the record's first cache lines (about 260 bytes), then the
	// attribute slots and arena they point into. A record comes back to a request cold (it was
	// last touched when its batch was exported); with group and slot at the end, after the 1.8 KiB
	// of buffers, ending a span cost one more cache miss per span.

	exp     *recordExport
	name    string
	traceID trace.TraceID
	spanID  trace.SpanID
	parent  trace.SpanID
	// start and end are Unix times in nanoseconds (0: not known yet): a filter phase's span takes
	// both from the engine's timings as offsets from the request's start, which time.Time.Add
	// made about 80 instructions each.
	start int64
	end   int64
	kind  trace.SpanKind
	// slot is the engine's timing slot whose times the span takes (-1: none, the span read the
	// clock itself).
	slot   int
	flags  trace.TraceFlags
	remote bool // the parent is remote (the incoming traceparent)
	ended  bool
	// group, for a filter phase's or an upstream attempt's span, is the request's tracing
	// state: ending, the record joins the request's other spans, queued together when the
	// server span ends (one lock of the batcher per request rather than one per span).
	group *reqState
	// rctx is the context that carries the record as the current span (see spanRecord.ctx).
	rctx recordCtx
	// fixed are the span's first attributes when they are the same for every span of its kind
	// (a filter phase's kind, phase, index and name), shared and read-only, and fixedPB their
	// encoding as Span.attributes fields, made once (see stageInfo); attrs are the others.
	// Nothing is copied per span, and the exporter copies the encoded bytes.
	fixed   []attribute.KeyValue
	fixedPB []byte
	attrs   []attribute.KeyValue
	// arena holds the bytes of the attribute values copied from the request (the path, the
	// host, the user agent): the values are strings over it, valid until the record is reused.
	arena  []byte
	status sdktrace.Status
	tstate string // the incoming tracestate, in arena
	events []sdktrace.Event
	// The initial backing of attrs and arena, in the record: a new record is one allocation.
	attrBuf  [recordAttrs]attribute.KeyValue
	arenaBuf [recordArena]byte

	// The embedded interfaces are nil: they only supply the sealed methods (trace.Span's and
	// ReadOnlySpan's unexported ones); every other method is defined below. Never read, they
	// come last.
	embedded.Span
	sdktrace.ReadOnlySpan
}

// recordExport is what every record of one telemetry instance shares.
type recordExport struct {
	res      *resource.Resource
	scope    instrumentation.Scope
	queue    func(*spanRecord)             // hands an ended record to the batcher
	queueAll func([]sdktrace.ReadOnlySpan) // hands a request's ended records to it at once
	tp       trace.TracerProvider
	// free are exported records ready for reuse, returned a batch at a time and taken a
	// request's worth at a time (one lock each way); past maxFreeRecords they go to pool, which
	// a collection may empty. A sync.Pool alone cost a slow-path Get per span (the records are
	// put on the exporting goroutine's P and taken on the requests'), and lost every record at
	// every other collection.
	mu   sync.Mutex
	free []*spanRecord
	pool sync.Pool
}

// maxFreeRecords bounds the records kept for reuse outside the pool: four batches of the
// default size, about 4 MiB (a record is 2 KiB).
const maxFreeRecords = 2048

// Sizes a pooled record starts with; a span needing more grows them once, and keeps them. 23
// attribute slots make a record 2,032 bytes, in the allocator's 2 KiB size class, whose objects
// start on a cache line: with 24 it took 2,304 bytes, its hot fields straddling lines.
const (
	recordAttrs = 23
	recordArena = 256
)

func newRecordExport(res *resource.Resource, queue func(*spanRecord)) *recordExport {
	e := &recordExport{res: res, scope: instrumentation.Scope{Name: tracerName}, queue: queue}
	e.pool.New = func() any {
		r := &spanRecord{exp: e}
		r.attrs, r.arena = r.attrBuf[:0], r.arenaBuf[:0]
		r.rctx.r = r
		return r
	}
	return e
}

// recordCtx is the context of a record: trace.SpanFromContext finds the record in it. The
// trace API keeps its context key unexported; recordCtx recognizes it by asking a context made
// with trace.ContextWithSpan, which answers spanProbe for that key and nothing else. (A
// context.WithValue per record would cost an allocation per new record, and one more cache
// line per lookup.) Like context.Background, it has no deadline and is never done.
type recordCtx struct {
	r *spanRecord
}

func (*recordCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*recordCtx) Done() <-chan struct{}       { return nil }
func (*recordCtx) Err() error                  { return nil }

// ctx is the context carrying r as the current span: part of the record, nothing allocated.
func (r *spanRecord) ctx() context.Context { return &r.rctx }

var (
	spanProbe    = &spanRecord{} // never used as a span: only its address is compared
	spanProbeCtx = trace.ContextWithSpan(context.Background(), spanProbe)
)

func (c *recordCtx) Value(key any) any {
	if v, ok := spanProbeCtx.Value(key).(*spanRecord); ok && v == spanProbe {
		return c.r
	}
	return nil
}

// reserve puts n cleared records in *spare (with what it holds already), for a request's spans.
func (e *recordExport) reserve(spare *[]*spanRecord, n int) {
	if len(*spare) > 0 && (*spare)[0].exp != e {
		// Left from a request traced before a reload, by another telemetry instance.
		clear(*spare)
		*spare = (*spare)[:0]
	}
	n -= len(*spare)
	if n <= 0 {
		return
	}
	e.mu.Lock()
	k := max(len(e.free)-n, 0)
	*spare = append(*spare, e.free[k:]...)
	clear(e.free[k:])
	e.free = e.free[:k]
	e.mu.Unlock()
}

// get returns a cleared record for a new span, from spare when it holds one (see reserve).
func (e *recordExport) get(spare *[]*spanRecord, name string, kind trace.SpanKind, traceID trace.TraceID, parent trace.SpanID, flags byte, start int64) *spanRecord {
	var r *spanRecord
	if spare != nil && len(*spare) > 0 {
		n := len(*spare) - 1
		r, (*spare)[n] = (*spare)[n], nil
		*spare = (*spare)[:n]
	} else {
		r = e.pool.Get().(*spanRecord)
	}
	r.name, r.kind = name, kind
	r.traceID, r.spanID, r.parent = traceID, newSpanID(), parent
	r.flags = trace.TraceFlags(flags) | trace.FlagsSampled
	r.start = start
	r.slot = -1
	return r
}

// freeAll returns the records among spans, exported, for reuse.
func freeAll(spans []sdktrace.ReadOnlySpan) {
	var e *recordExport
	for _, s := range spans {
		if r, ok := s.(*spanRecord); ok {
			r.reset()
			e = r.exp
		}
	}
	if e == nil {
		return
	}
	e.mu.Lock()
	for i, s := range spans {
		if len(e.free) == maxFreeRecords {
			e.mu.Unlock()
			for _, s := range spans[i:] {
				if r, ok := s.(*spanRecord); ok {
					r.exp.pool.Put(r)
				}
			}
			return
		}
		if r, ok := s.(*spanRecord); ok {
			if r.exp == e {
				e.free = append(e.free, r)
			} else {
				r.exp.pool.Put(r) // another telemetry instance's (a reload's)
			}
		}
	}
	e.mu.Unlock()
}

// reset readies r for reuse. The attribute array is not cleared: what it still points to is kept
// alive only until the slots are overwritten, and clearing 24 values with pointers (write
// barriers) cost more than the rest of the reset.
func (r *spanRecord) reset() {
	clear(r.events)
	r.attrs, r.events, r.arena = r.attrs[:0], r.events[:0], r.arena[:0]
	r.name, r.tstate, r.remote, r.ended, r.group = "", "", false, false, nil
	r.fixed, r.fixedPB = nil, nil
	r.status = sdktrace.Status{}
	r.end = 0
}

// str copies b into the arena and returns it as a string, without allocating while the arena
// has room. A string made before the arena grew keeps the old array alive, so it stays valid.
func (r *spanRecord) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	n := len(r.arena)
	r.arena = append(r.arena, b...)
	return unsafe.String(&r.arena[n], len(b))
}

// since returns the arena's bytes from n on (appended by the caller) as a string.
func (r *spanRecord) since(n int) string {
	if len(r.arena) == n {
		return ""
	}
	return unsafe.String(&r.arena[n], len(r.arena)-n)
}

// add records attributes the record does not have yet (the observer's own, on a fresh record),
// without looking for an earlier value of their keys.
func (r *spanRecord) add(kvs ...attribute.KeyValue) {
	r.attrs = append(r.attrs, kvs...)
}

// setFixed gives a fresh record its fixed attributes and their encoding (see spanRecord.fixed).
func (r *spanRecord) setFixed(kvs []attribute.KeyValue, pb []byte) {
	r.fixed, r.fixedPB = kvs, pb
}

// unfix makes the fixed attributes ordinary ones, in front of the others: a filter is setting
// one of their keys (a route that handed the request on sets http.route); in the record's own
// attribute array when they fit there.
func (r *spanRecord) unfix() {
	nf, n := len(r.fixed), len(r.attrs)
	if nf+n < len(r.attrBuf) && cap(r.attrs) == len(r.attrBuf) && &r.attrs[:1][0] == &r.attrBuf[0] {
		r.attrs = r.attrBuf[:nf+n]
		copy(r.attrs[nf:], r.attrs[:n])
		copy(r.attrs, r.fixed)
	} else {
		attrs := make([]attribute.KeyValue, 0, nf+n+1)
		r.attrs = append(append(attrs, r.fixed...), r.attrs...)
	}
	r.fixed, r.fixedPB = nil, nil
}

// setOwn is set for one of the observer's own attributes (a verdict, a status code), whose key
// is never a fixed one: only the others are searched.
func (r *spanRecord) setOwn(kv attribute.KeyValue) {
	if r.ended {
		return // as SetAttributes: a filter may have ended its phase's span
	}
	for i := range r.attrs {
		if r.attrs[i].Key == kv.Key {
			r.attrs[i] = kv
			return
		}
	}
	r.attrs = append(r.attrs, kv)
}

// set records attributes as the SDK does, the last value of a key winning.
func (r *spanRecord) set(kvs ...attribute.KeyValue) {
next:
	for _, kv := range kvs {
		if !kv.Valid() {
			continue
		}
		for i := range r.fixed {
			if r.fixed[i].Key == kv.Key {
				r.unfix()
				break
			}
		}
		for i := range r.attrs {
			if r.attrs[i].Key == kv.Key {
				r.attrs[i] = kv
				continue next
			}
		}
		r.attrs = append(r.attrs, kv)
	}
}

// The trace.Span methods, for the request's filters.

func (r *spanRecord) SpanContext() trace.SpanContext {
	scc := trace.SpanContextConfig{TraceID: r.traceID, SpanID: r.spanID, TraceFlags: r.flags}
	if r.tstate != "" {
		// Parsed only when asked for (by an exporter, or a span started under this one): a
		// request without tracestate never pays for it.
		if ts, err := trace.ParseTraceState(r.tstate); err == nil {
			scc.TraceState = ts
		}
	}
	return trace.NewSpanContext(scc)
}

func (r *spanRecord) IsRecording() bool { return !r.ended }

func (r *spanRecord) SetAttributes(kvs ...attribute.KeyValue) {
	if !r.ended {
		r.set(kvs...)
	}
}

func (r *spanRecord) SetName(name string) {
	if !r.ended {
		r.name = name
	}
}

// SetStatus follows the SDK: Ok overrides Error, Unset overrides nothing, a description is kept
// only with Error.
func (r *spanRecord) SetStatus(code codes.Code, desc string) {
	if r.ended || r.status.Code > code {
		return
	}
	s := sdktrace.Status{Code: code}
	if code == codes.Error {
		s.Description = desc
	}
	r.status = s
}

func (r *spanRecord) AddEvent(name string, opts ...trace.EventOption) {
	if r.ended {
		return
	}
	cfg := trace.NewEventConfig(opts...)
	r.events = append(r.events, sdktrace.Event{Name: name, Attributes: cfg.Attributes(), Time: cfg.Timestamp()})
}

// RecordError adds the error as an "exception" event, as the SDK does.
func (r *spanRecord) RecordError(err error, opts ...trace.EventOption) {
	if r.ended || err == nil {
		return
	}
	opts = append(opts, trace.WithAttributes(
		semconv.ExceptionType(typeName(err)),
		semconv.ExceptionMessage(err.Error()),
	))
	r.AddEvent(semconv.ExceptionEventName, opts...)
}

func (r *spanRecord) AddLink(trace.Link) {}

// End queues the span for export; the record is not the caller's any more.
func (r *spanRecord) End(opts ...trace.SpanEndOption) {
	if r.ended {
		return
	}
	end := time.Now().UnixNano()
	if len(opts) > 0 {
		if cfg := trace.NewSpanEndConfig(opts...); !cfg.Timestamp().IsZero() {
			end = cfg.Timestamp().UnixNano()
		}
	}
	if r.start == 0 {
		r.start = end // a phase span ended before the engine timed it (a filter ended it)
	}
	r.finish(end)
}

// finish ends the span at end and queues it, or leaves it with the request's other spans until
// the server span ends.
func (r *spanRecord) finish(end int64) {
	r.end, r.ended = end, true
	if g := r.group; g != nil && g.server != nil && !g.server.ended {
		g.pending = append(g.pending, r)
		return
	}
	r.exp.queue(r)
}

// endPhase ends a filter phase's span at the times the engine recorded for it (slot of times),
// or, when it has none, now.
func (r *spanRecord) endPhase(c *engine.Ctx, times []engine.StageTime, ph engine.Phase) {
	if r.ended {
		return
	}
	if r.slot >= 0 && r.slot < len(times) {
		if t := &times[r.slot]; t.End != 0 && t.Phase == ph {
			base := c.Start.UnixNano()
			r.start = base + int64(t.Start)
			r.finish(base + int64(t.End))
			return
		}
	}
	r.End()
}

// endAttempt ends an upstream attempt's span at the end the engine recorded for it, or now.
func (r *spanRecord) endAttempt(c *engine.Ctx) {
	if r.ended {
		return
	}
	if at := c.AttemptTimes(); r.slot >= 0 && r.slot < len(at) && at[r.slot].End != 0 {
		r.finish(c.Start.UnixNano() + int64(at[r.slot].End))
		return
	}
	r.End()
}

func (r *spanRecord) TracerProvider() trace.TracerProvider { return r.exp.tp }

// The ReadOnlySpan methods, for the exporters.

func (r *spanRecord) Name() string { return r.name }
func (r *spanRecord) Parent() trace.SpanContext {
	if !r.parent.IsValid() {
		return trace.SpanContext{}
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: r.traceID, SpanID: r.parent, TraceFlags: r.flags, Remote: r.remote})
}
func (r *spanRecord) SpanKind() trace.SpanKind { return r.kind }
func (r *spanRecord) StartTime() time.Time     { return unixTime(r.start) }
func (r *spanRecord) EndTime() time.Time       { return unixTime(r.end) }

// Attributes returns the fixed attributes and the others, in that order; with fixed ones (a
// filter phase's span) it allocates, which only exporters other than the gateway's OTLP
// exporter (stdout, the SDK's) do.
func (r *spanRecord) Attributes() []attribute.KeyValue {
	if len(r.fixed) == 0 {
		return r.attrs
	}
	return append(r.fixed[:len(r.fixed):len(r.fixed)], r.attrs...)
}
func (r *spanRecord) Links() []sdktrace.Link                      { return nil }
func (r *spanRecord) Events() []sdktrace.Event                    { return r.events }
func (r *spanRecord) Status() sdktrace.Status                     { return r.status }
func (r *spanRecord) InstrumentationScope() instrumentation.Scope { return r.exp.scope }

// InstrumentationLibrary is ReadOnlySpan's deprecated method, still in the interface; its type,
// instrumentation.Library, is an alias of Scope, so it is spelled Scope here.
func (r *spanRecord) InstrumentationLibrary() instrumentation.Scope { return r.exp.scope }
func (r *spanRecord) Resource() *resource.Resource                  { return r.exp.res }
func (r *spanRecord) DroppedAttributes() int                        { return 0 }
func (r *spanRecord) DroppedLinks() int                             { return 0 }
func (r *spanRecord) DroppedEvents() int                            { return 0 }
func (r *spanRecord) ChildSpanCount() int                           { return 0 }

// unixTime is a record's time as a time.Time (the zero Time when not known).
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// typeName is exception.type for err, as the SDK spells it.
func typeName(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

var (
	_ trace.Span            = (*spanRecord)(nil)
	_ sdktrace.ReadOnlySpan = (*spanRecord)(nil)
)
