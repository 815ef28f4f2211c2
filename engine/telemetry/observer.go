package telemetry

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/secret"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// Attribute keys of our own, for what the HTTP conventions do not cover.
const (
	attrFilterKind = attribute.Key("sluice.filter.kind")
	attrFilterName = attribute.Key("sluice.filter.name")
	// attrFilterIndex is the stage's position in its pipeline (0-based): two filters of one kind
	// are told apart by it (their span names differ too: "headers request", "headers#2 request").
	attrFilterIndex = attribute.Key("sluice.filter.index")
	attrPhase       = attribute.Key("sluice.phase")
	attrVerdict     = attribute.Key("sluice.verdict")
	attrPipeline    = attribute.Key("sluice.pipeline")
	attrUpstream    = attribute.Key("sluice.upstream")
	// attrEntryPipeline names the pipeline a request entered by when a route handed it on.
	attrEntryPipeline = attribute.Key("sluice.entry_pipeline")
)

// observer implements engine.Observer (metrics always, spans when tracing) and
// engine.AttemptObserver (client spans and trace propagation to the upstream).
type observer struct {
	t       *Telemetry
	tracing bool
	// pipes caches per-pipeline metrics and span names, keyed by *engine.Pipeline (a pointer key
	// keeps the lookup allocation-free).
	pipes    sync.Map
	unrouted *pipeInfo
}

var (
	_ engine.Observer         = (*observer)(nil)
	_ engine.AttemptObserver  = (*observer)(nil)
	_ engine.ResponseFinisher = (*observer)(nil)
	_ engine.SpanAnnotator    = (*observer)(nil)
)

// pipeInfo is what the observer precomputes for one pipeline.
type pipeInfo struct {
	owner      *observer
	pipeline   *engine.Pipeline // the one it was made for
	name       string
	route      string // http.route: the pipeline's match as a template ("/api/*")
	metrics    *pipeMetrics
	stageNames map[*engine.Stage]*stageInfo
	labels     []string       // each stage's label, by index (recent.go)
	dash       *dashPipe      // the dashboard's counters (dashstats.go)
	stages     []stageMetrics // by stage index (stagemetrics.go)
	// passes counts the requests that ran every phase of the pipeline, each request phase
	// continuing (passes.go); flushed is how many of them the verdict series have, and gen the
	// Telemetry's attach generation the pipeline came with (0: never attached).
	passes atomic.Uint64
	// passNanos are the dashboard's time counters of a pass's phases, in their order.
	passNanos []*atomic.Uint64
	flushed   uint64 // guarded by passList.mu
	gen       uint64
	// ratio is the pipeline's trace_sample_ratio as a bound (see Telemetry.ratioBound), when
	// ownRatio; otherwise the telemetry block's applies.
	ratio    uint64
	ownRatio bool
	// spanNames is the server span's name ("{method} {route}") by method ("HTTP" for one the
	// conventions do not list), made up front so that naming a span allocates nothing.
	spanNames map[string]string
	// server are the server spans' fixed attributes by method, TLS and protocol version
	// (serverattrs.go), made on first use.
	server [len(knownMethods)][2][len(protoVersions)]atomic.Pointer[serverFixed]
	// attempts are the upstream attempts' fixed attributes by target (attemptattrs.go).
	attempts [attemptSlots]atomic.Pointer[attemptInfo]
}

// sampleBound is the bound under which a trace this pipeline starts is sampled.
func (pi *pipeInfo) sampleBound(t *Telemetry) uint64 {
	if pi.ownRatio {
		return pi.ratio
	}
	return t.ratioBound
}

type stageInfo struct {
	index int       // the stage's position in its pipeline
	names [2]string // span name by engine.Phase
	attrs [2][]attribute.KeyValue
	pb    [2][]byte // attrs encoded as Span.attributes fields (spanRecord.fixedPB)
}

func newPipeInfo(o *observer, p *engine.Pipeline) *pipeInfo {
	pi := &pipeInfo{owner: o, pipeline: p, name: p.Name, route: routeTemplate(p), metrics: newPipeMetrics(p.Name), stageNames: map[*engine.Stage]*stageInfo{}, stages: newStageMetrics(p)}
	if p.TraceSampleRatio != nil {
		pi.ratio, pi.ownRatio = ratioBound(*p.TraceSampleRatio), true
	}
	stages := p.Stages()
	pi.dash = newDashPipe(len(stages))
	pi.passNanos = passNanos(p, pi.dash) // stagemetrics.go
	pi.spanNames = map[string]string{}
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE", "HTTP"} {
		pi.spanNames[m] = m + " " + pi.route
	}
	seen := map[string]int{}
	for i := range stages {
		s := &stages[i]
		pi.labels = append(pi.labels, s.Label())
		si := &stageInfo{index: i}
		label := s.Label()
		seen[label]++
		if n := seen[label]; n > 1 {
			label += "#" + strconv.Itoa(n)
		}
		for _, ph := range []engine.Phase{engine.PhaseRequest, engine.PhaseResponse} {
			si.names[ph] = label + " " + ph.String()
			si.attrs[ph] = []attribute.KeyValue{attrFilterKind.String(s.Kind), attrPhase.String(ph.String()), attrFilterIndex.Int(i)}
			if s.Name != "" {
				si.attrs[ph] = append(si.attrs[ph], attrFilterName.String(s.Name))
			}
			for _, kv := range si.attrs[ph] {
				si.pb[ph] = appendKeyValue(si.pb[ph], fSpanAttributes, kv)
			}
		}
		pi.stageNames[s] = si
	}
	return pi
}

func (o *observer) pipe(p *engine.Pipeline) *pipeInfo {
	if p == nil {
		return o.unrouted
	}
	if pi, ok := p.ObserverState().(*pipeInfo); ok && pi.owner == o {
		return pi
	}
	if v, ok := o.pipes.Load(p); ok {
		return v.(*pipeInfo)
	}
	pi := newPipeInfo(o, p)
	v, loaded := o.pipes.LoadOrStore(p, pi)
	if !loaded {
		trackPasses(pi) // passes.go: never attached, retired (its passes folded) at the next flush
	}
	return v.(*pipeInfo)
}

// reqState is one request's tracing state, kept with the engine.Ctx (ObserverState). When the
// request is not sampled it is also the request's span (see localSpan): c.Context then carries it,
// so filters and otel_log see the trace and span ids without an SDK span being made.
type reqState struct {
	embedded.Span // satisfies trace.Span's sealed method set for localSpan

	pi      *pipeInfo
	sampled bool
	flags   byte // the traceparent flags sent on (sampled, random)
	traceID trace.TraceID
	spanID  trace.SpanID // the server span's id when not sampled

	server    *spanRecord // the server span when sampled
	stage     *spanRecord // the open stage span (sampled only)
	stageFail bool        // c.Failure was already set when the open stage started

	attempts   int
	tracestate []byte // the incoming tracestate, validated and combined
	buf        []byte // scratch for header values
	// pending are the request's ended spans, queued with the server span when it ends.
	pending []sdktrace.ReadOnlySpan
	// spare are records taken for the request's spans at once (recordExport.reserve).
	spare []*spanRecord

	// localCtx is made once per state: a context whose span is this state, valid for whichever
	// request holds the state.
	localCtx context.Context
}

// acquireState returns c's tracing state, made on the Ctx's first traced request.
func acquireState(c *engine.Ctx) *reqState {
	if st, ok := c.ObserverState.(*reqState); ok {
		return st
	}
	st := &reqState{buf: make([]byte, 0, 64), tracestate: make([]byte, 0, 64)}
	st.localCtx = trace.ContextWithSpan(context.Background(), (*localSpan)(st))
	c.ObserverState = st
	return st
}

// activeState returns the tracing state of c's request, or nil when the request is not traced
// (tracing off, or before StartRequest and after EndRequest). The state is found through the Ctx's
// own field, not an engine.Key: the hooks run several times per request, and the key's slice would
// be one more cache line to load each time.
func activeState(c *engine.Ctx) *reqState {
	if st, ok := c.ObserverState.(*reqState); ok && st.pi != nil {
		return st
	}
	return nil
}

// release readies st for the Ctx's next request; st.pi = nil marks it inactive.
func (st *reqState) release() {
	st.pi = nil
	st.server, st.stage = nil, nil
	clear(st.pending) // queued by now, unless the server span never ended
	st.pending = st.pending[:0]
	st.attempts = 0
	st.tracestate = st.tracestate[:0]
}

// The W3C trace context header names.
const (
	hdrTraceparent = "Traceparent"
	hdrTracestate  = "Tracestate"
)

// StartRequest decides sampling and opens the server span (sampled) or a local span context
// (not sampled). A single valid incoming traceparent is continued; none, several or a malformed
// one starts a new trace.
func (o *observer) StartRequest(c *engine.Ctx, p *engine.Pipeline) {
	if !o.tracing {
		return
	}
	st := acquireState(c)
	st.pi = o.pipe(p)

	h := &c.Request.Header
	var parent parentContext
	remote := false
	// PeekAll reuses one buffer per header: finish with traceparent before asking for tracestate.
	if tps := h.PeekAll(hdrTraceparent); len(tps) == 1 {
		parent, remote = parseTraceparent(tps[0])
	}
	if remote {
		// An invalid tracestate is dropped as a whole; the trace is still continued.
		if tss := h.PeekAll(hdrTracestate); len(tss) > 0 {
			st.tracestate, _ = appendTraceState(st.tracestate[:0], tss)
		}
		st.sampled = parent.sampled()
		st.flags = parent.flags & knownFlags // the random flag goes on as received
	} else {
		bound := st.pi.sampleBound(o.t)
		st.sampled = bound != 0 && rand.Uint64()>>1 < bound
		st.flags = flagRandom // our trace ids are random
		if st.sampled {
			st.flags |= flagSampled
		}
	}

	if !st.sampled {
		if remote {
			st.traceID = parent.traceID
		} else {
			st.traceID = newTraceID()
		}
		st.spanID = newSpanID()
		c.Context = st.localCtx
		return
	}

	var traceID trace.TraceID
	var parentID trace.SpanID
	if remote {
		traceID, parentID = parent.traceID, parent.spanID
	} else {
		traceID = newTraceID()
	}
	// The server span, a span per filter phase and one upstream attempt's: taken together.
	need := 2
	if o.t.filterSpans {
		need += 2 * len(st.pi.labels)
	}
	o.t.recs.reserve(&st.spare, need)
	r := o.t.recs.get(&st.spare, "", trace.SpanKindServer, traceID, parentID, st.flags, c.Start.UnixNano())
	r.remote = remote
	if len(st.tracestate) > 0 {
		r.tstate = r.str(st.tracestate)
	}
	st.serverAttrs(c, p, r)
	st.server, st.traceID = r, traceID
	c.Context = r.ctx()
	if o.t.filterSpans {
		c.ObserveStages() // the pipeline calls StartStage and EndStage for the filter spans
	}
}

// serverAttrs names the server span ("{method} {route}") and records its request attributes
// per the OpenTelemetry HTTP server conventions. The values read from the request are copied
// into the record's arena: no string is allocated for them.
func (st *reqState) serverAttrs(c *engine.Ctx, p *engine.Pipeline, r *spanRecord) {
	fc := c.Fast
	h := &c.Request.Header
	method, known := knownMethod(h.Method())
	scheme := "http"
	if fc != nil && fc.IsTLS() {
		scheme = "https"
	}
	version := protoVersion(c.Proto)
	switch {
	case known && p != nil:
		// The pipeline's, the method's, the scheme's and the version's: encoded once
		// (serverattrs.go).
		f := st.pi.serverFixed(p, methodIndex(method), scheme == "https", versionIndex(version))
		r.setFixed(f.fixed, f.pb)
	case known:
		r.attrs = serverAttrsFirst(r.attrs, method, scheme, version, st.pi, p)
	default:
		r.attrs = serverAttrsFirst(r.attrs, "_OTHER", scheme, version, st.pi, p)
		r.add(semconv.HTTPRequestMethodOriginal(r.str(h.Method())))
		method = "HTTP"
	}
	r.add(semconv.URLPath(r.str(rawPath(c.Request))))
	r.name = method
	if p != nil {
		r.name = st.pi.spanNames[method]
	}
	if q := rawQuery(c.Request); len(q) > 0 {
		n := len(r.arena)
		r.arena = append(append(r.arena, '?'), q...)
		r.add(semconv.URLQuery(secret.Query(r.since(n))[1:]))
	}
	if host, port := splitHostPort(r.str(h.Host())); host != "" {
		r.add(semconv.ServerAddress(host))
		if port == 0 {
			port = 80
			if scheme == "https" {
				port = 443
			}
		}
		r.add(semconv.ServerPort(port))
	}
	if fc != nil {
		if ta, ok := fc.RemoteAddr().(*net.TCPAddr); ok {
			n := len(r.arena)
			if ip, ok := netip.AddrFromSlice(ta.IP); ok {
				r.arena = ip.Unmap().AppendTo(r.arena)
			}
			r.add(semconv.NetworkPeerAddress(r.since(n)), semconv.NetworkPeerPort(ta.Port))
		}
	}
	if c.ClientAddr.IsValid() {
		n := len(r.arena)
		r.arena = c.ClientAddr.AppendTo(r.arena)
		r.add(semconv.ClientAddress(r.since(n)))
	}
	if ua := h.UserAgent(); len(ua) > 0 {
		r.add(semconv.UserAgentOriginal(r.str(ua)))
	}
	if engine.IsGRPCAny(h) {
		r.add(appendRPCAttrs(nil, rawPath(c.Request))...) // grpc.go
	}
}

// EndRequest records the request's metrics, ends its server span (once a streamed body has ended,
// see FinishResponse) and, when configured, returns the trace id in the response header.
func (o *observer) EndRequest(c *engine.Ctx) {
	status := c.Response.StatusCode()
	var st *reqState
	if o.tracing {
		st = activeState(c)
	}
	var pi *pipeInfo
	if st != nil {
		o.rerouted(c, st) // routed.go: name the pipeline a route handed the request to
		pi = st.pi
	} else {
		pi = o.pipe(c.ServingPipeline()) // looked up only untraced: a traced request has it
	}
	o.stagesDone(c, pi) // stagemetrics.go
	// One clock read for the request series and the dashboard.
	var dur time.Duration
	if !c.Start.IsZero() {
		dur = time.Since(c.Start)
	}
	pi.metrics.record(c, status, dur)
	o.dashboard(c, st, pi, status, dur) // dashstats.go, recent.go
	if st == nil {
		// A gRPC call's status may come in the trailers of a streamed body: counted at its end
		// (FinishResponse) then.
		if engine.IsGRPCAny(&c.Request.Header) && !c.DeferFinish(o) {
			o.pipe(c.ServingPipeline()).metrics.recordGRPC(c)
		}
		return
	}
	if st.stage != nil {
		// A stage that panicked never reached EndStage.
		st.stage.SetStatus(codes.Error, "stage did not finish")
		st.stage.End()
	}
	if hdr := o.t.respHeader; hdr != nil {
		st.buf = appendHex(st.buf[:0], st.traceID[:])
		c.Response.Header.SetCanonical(hdr, st.buf)
	}
	if o.t.serverTiming {
		// Trace Context Level 2's response format: the server span's context, as a
		// Server-Timing metric named "trace", beside whatever Server-Timing the upstream sent.
		st.buf = append(st.buf[:0], `trace;desc="`...)
		st.buf = appendTraceparent(st.buf, st.traceID, st.serverSpanID(), st.flags)
		st.buf = append(st.buf, '"')
		c.Response.Header.AddBytesV("Server-Timing", st.buf)
	}
	if c.DeferFinish(o) {
		// The body streams: the span ends with it (FinishResponse), when a gRPC call's status
		// has arrived in its trailers, and the request's span context stays valid until then
		// for otel_log, which finishes first.
		return
	}
	o.endServer(c, st, status, nil)
}

// FinishResponse ends the server span of a request whose response body streamed, once that body
// ended (engine.ResponseFinisher).
func (o *observer) FinishResponse(c *engine.Ctx, cut error) {
	st := activeState(c)
	if st == nil {
		if engine.IsGRPCAny(&c.Request.Header) {
			o.pipe(c.ServingPipeline()).metrics.recordGRPC(c)
		}
		return
	}
	o.endServer(c, st, c.Response.StatusCode(), cut)
}

// endServer ends the request's server span (sampled) and releases its tracing state. cut is why a
// streamed response ended early, an error of the span.
func (o *observer) endServer(c *engine.Ctx, st *reqState, status int, cut error) {
	if engine.IsGRPCAny(&c.Request.Header) {
		st.pi.metrics.recordGRPC(c)
	}
	if st.sampled {
		sp := st.server
		sp.setOwn(semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			// Server spans mark only 5xx as errors; a 4xx is the client's mistake.
			sp.SetAttributes(semconv.ErrorTypeKey.String(flagsErrorType(c.Flags, status)))
			sp.SetStatus(codes.Error, "")
		}
		if engine.IsGRPCAny(&c.Request.Header) {
			endRPCSpan(sp, c) // grpc.go
		}
		if c.Failure != nil {
			sp.RecordError(c.Failure)
		}
		if cut != nil {
			sp.RecordError(cut)
			sp.SetAttributes(semconv.ErrorTypeKey.String(cutType(cut)))
			sp.SetStatus(codes.Error, "response body cut")
		}
		// The server span and the request's other spans are queued together.
		if !sp.ended {
			// The request's start plus the monotonic time since: one clock read, not two.
			sp.end, sp.ended = sp.start+int64(time.Since(c.Start)), true
			if c.Start.IsZero() {
				sp.end = time.Now().UnixNano()
			}
			st.pending = append(st.pending, sp)
		}
		o.t.recs.queueAll(st.pending)
	}
	c.Context = context.Background()
	st.release()
}

// StartStage opens a child span of the server span for one filter phase (sampled requests only),
// and makes it the request's context while the filter runs, so the filter's own spans and events
// (a Wasm guest's log lines) nest under it.
func (o *observer) StartStage(c *engine.Ctx, s *engine.Stage, ph engine.Phase) any {
	if !o.tracing || !o.t.filterSpans {
		return nil
	}
	st := activeState(c)
	if st == nil || !st.sampled {
		return nil
	}
	var name string
	var attrs []attribute.KeyValue
	var pb []byte
	if si := st.pi.stageNames[s]; si != nil {
		name, attrs, pb = si.names[ph], si.attrs[ph], si.pb[ph]
	} else {
		name = s.Label()
	}
	r := o.t.recs.get(&st.spare, name, trace.SpanKindInternal, st.traceID, st.server.spanID, st.flags, 0)
	r.setFixed(attrs, pb)
	r.group = st
	// The engine times every phase right after this call and before EndStage's (stagetimes.go):
	// the span takes its times from that slot rather than reading the clock twice more.
	if k := len(c.StageTimes()); !o.t.noStageTimes && k < engine.MaxStageTimes {
		r.slot = k
	} else {
		r.start = time.Now().UnixNano()
	}
	st.stage, st.stageFail = r, c.Failure != nil
	c.Context = r.ctx()
	return r
}

// EndStage ends the filter phase's span with its verdict; a failure the filter recorded (c.Fail)
// becomes the span's error.
func (o *observer) EndStage(c *engine.Ctx, s *engine.Stage, ph engine.Phase, tok any, v engine.Verdict) {
	if c.PhaseUnrecorded() {
		o.unrecordedStage(c, s, ph, v) // stagemetrics.go
	}
	sp, ok := tok.(*spanRecord)
	if !ok {
		return
	}
	st := activeState(c)
	if ph == engine.PhaseRequest {
		sp.setOwn(attrVerdict.String(v.String()))
		if v == engine.Respond {
			sp.setOwn(semconv.HTTPResponseStatusCode(c.Response.StatusCode()))
		}
	}
	if st != nil {
		if !st.stageFail && c.Failure != nil {
			sp.RecordError(c.Failure)
			// A filter that deliberately answered 4xx (401, 403, 429) did its job: the failure
			// is recorded, the span is not an error.
			if !(v == engine.Respond && c.Response.StatusCode() < 500) {
				typ := flagsErrorType(c.Flags, 0)
				if typ == "" {
					typ = errorType(c.Failure)
				}
				sp.SetAttributes(semconv.ErrorTypeKey.String(typ))
				sp.SetStatus(codes.Error, "")
			}
		}
		st.stage = nil
		c.Context = st.server.ctx()
	}
	sp.endPhase(c, c.StageTimes(), ph)
}

// StartAttempt opens a client span for one upstream attempt (retries are siblings under the
// server span) and appends to lines the traceparent, whose parent is that client span, and the
// incoming tracestate. Unsampled requests get a fresh span id in traceparent and no span.
func (o *observer) StartAttempt(c *engine.Ctx, target string, req *fasthttp.Request, lines []byte) (any, []byte) {
	c.BeginAttemptTime(target) // for the dashboard's waterfalls
	if !o.tracing {
		return nil, lines
	}
	st := activeState(c)
	if st == nil {
		return nil, lines
	}
	st.attempts++
	var tok any
	var spanID trace.SpanID // the client span's, or for an unsampled request a fresh one
	if st.sampled {
		method, known := knownMethod(req.Header.Method())
		if !known {
			method = "HTTP"
		}
		// The scheme the request's parsed URI had: the client connection's.
		scheme := "http"
		if c.Fast != nil && c.Fast.IsTLS() {
			scheme = "https"
		}
		r := o.t.recs.get(&st.spare, method, trace.SpanKindClient, st.traceID, st.server.spanID, st.flags, 0)
		r.group = st
		// BeginAttemptTime above timed the attempt's start, and EndAttemptTime will time its end.
		if at := c.AttemptTimes(); len(at) > 0 && at[len(at)-1].End == 0 && at[len(at)-1].Target == target {
			r.slot = len(at) - 1
			r.start = c.Start.UnixNano() + int64(at[r.slot].Start)
		} else {
			r.start = time.Now().UnixNano()
		}
		st.pi.attemptAttrs(r, c, target) // attemptattrs.go: the target's and upstream's
		n := len(r.arena)
		r.arena = append(append(append(append(r.arena, scheme...), "://"...), target...), rawPath(req)...)
		r.add(
			semconv.HTTPRequestMethodKey.String(methodAttr(method, known)),
			semconv.URLFull(r.since(n)), // without the query: it may carry secrets
		)
		if !known {
			r.add(semconv.HTTPRequestMethodOriginal(r.str(req.Header.Method())))
		}
		if st.attempts > 1 {
			r.add(semconv.HTTPRequestResendCount(st.attempts - 1))
		}
		spanID = r.spanID
		tok = r
	} else {
		spanID = newSpanID()
	}
	lines = append(lines, "Traceparent: "...)
	lines = appendTraceparent(lines, st.traceID, spanID, st.flags)
	lines = append(lines, "\r\n"...)
	if len(st.tracestate) > 0 {
		// Validated by appendTraceState: no byte of it can break the line.
		lines = append(append(append(lines, "Tracestate: "...), st.tracestate...), "\r\n"...)
	}
	return tok, lines
}

// EndAttempt ends the attempt's client span with the upstream status or the error.
func (o *observer) EndAttempt(c *engine.Ctx, tok any, status int, err error) {
	c.EndAttemptTime(status, err)
	sp, ok := tok.(*spanRecord)
	if !ok {
		return
	}
	if status > 0 {
		sp.setOwn(semconv.HTTPResponseStatusCode(status))
	}
	switch {
	case err != nil:
		sp.RecordError(err)
		typ := errorType(err)
		if typ == errOther {
			if ft := flagsErrorType(c.Flags, 0); ft != "" {
				typ = ft
			}
		}
		sp.SetAttributes(semconv.ErrorTypeKey.String(typ))
		sp.SetStatus(codes.Error, "")
	case status >= 400:
		// Client spans mark 4xx as errors too.
		sp.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		sp.SetStatus(codes.Error, "")
	}
	sp.endAttempt(c)
}

// SpanContext returns the request's server span context (valid while the request runs, even
// when it is not sampled), or whatever span c.Context carries when telemetry did not start one.
// otel_log uses it so its records carry the server span's id rather than its own stage's.
func SpanContext(c *engine.Ctx) trace.SpanContext {
	if st := activeState(c); st != nil {
		if st.sampled {
			return st.server.SpanContext()
		}
		return (*localSpan)(st).SpanContext()
	}
	if c.Context == nil {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(c.Context)
}

// localSpan is the non-recording span of an unsampled request. It allocates nothing: it is the
// pooled state itself.
type localSpan reqState

var _ trace.Span = (*localSpan)(nil)

func (l *localSpan) SpanContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: l.traceID, SpanID: l.spanID})
}
func (l *localSpan) End(...trace.SpanEndOption)              {}
func (l *localSpan) AddEvent(string, ...trace.EventOption)   {}
func (l *localSpan) AddLink(trace.Link)                      {}
func (l *localSpan) IsRecording() bool                       { return false }
func (l *localSpan) RecordError(error, ...trace.EventOption) {}
func (l *localSpan) SetStatus(codes.Code, string)            {}
func (l *localSpan) SetName(string)                          {}
func (l *localSpan) SetAttributes(...attribute.KeyValue)     {}
func (l *localSpan) TracerProvider() trace.TracerProvider    { return noop.NewTracerProvider() }

func newTraceID() (id trace.TraceID) {
	for id == (trace.TraceID{}) {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for id == (trace.SpanID{}) {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// knownMethod maps the method to the name the conventions list, without allocating.
func knownMethod(m []byte) (string, bool) {
	switch string(m) {
	case "GET":
		return "GET", true
	case "POST":
		return "POST", true
	case "PUT":
		return "PUT", true
	case "DELETE":
		return "DELETE", true
	case "HEAD":
		return "HEAD", true
	case "PATCH":
		return "PATCH", true
	case "OPTIONS":
		return "OPTIONS", true
	case "CONNECT":
		return "CONNECT", true
	case "TRACE":
		return "TRACE", true
	}
	return "", false
}

func methodAttr(m string, known bool) string {
	if known {
		return m
	}
	return "_OTHER"
}

// protoVersion is network.protocol.version for the protocol the client spoke (engine.Ctx.Proto):
// "1.0", "1.1" or "2".
func protoVersion(proto string) string {
	switch proto {
	case engine.ProtoHTTP2:
		return "2"
	case "HTTP/1.0":
		return "1.0"
	}
	return "1.1"
}

func splitHostPort(hp string) (string, int) {
	if strings.IndexByte(hp, ':') < 0 {
		return hp, 0 // no port: net.SplitHostPort would allocate its error to say so
	}
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return hp, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// rawPath is the request's raw path, read from its request-target. The observer never calls
// fasthttp's Request.URI: the parsed URI it caches outlives a later change of the target (the
// balancer's strip_prefix), and once parsed, Request.RequestURI rebuilds the target from it,
// normalized, so a traced request would reach filters and the upstream differently from an
// untraced one.
func rawPath(req *fasthttp.Request) []byte {
	p, _ := engine.RawPath(req)
	return p
}

// cutType is error.type for a streamed response cut before its end.
func cutType(cut error) string {
	var ce *engine.ResponseCutError
	if errors.As(cut, &ce) && ce.Upstream {
		return "upstream_cut"
	}
	return "client_cut"
}

// errOther is error.type for an error of no known kind (the conventions' fallback value).
const errOther = "_OTHER"

// errorType names an error for error.type: a low-cardinality identifier, never its message or
// its Go type.
func errorType(err error) string {
	var ne net.Error
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_reset"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alert):
		return "tls"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return errOther
}

// flagsErrorType is error.type for what the response flags say went wrong, the most specific
// flag first; with none of them set, the status code (when above 0) or "".
func flagsErrorType(f engine.RespFlags, status int) string {
	for _, e := range flagErrorTypes {
		if f&e.flag != 0 {
			return e.typ
		}
	}
	if status > 0 {
		return strconv.Itoa(status)
	}
	return ""
}

var flagErrorTypes = [...]struct {
	flag engine.RespFlags
	typ  string
}{
	{engine.FlagUpstreamTimeout, "timeout"},
	{engine.FlagStreamTimeout, "timeout"},
	{engine.FlagUpstreamTLS, "tls"},
	{engine.FlagUpstreamConnFail, "connection_refused"},
	{engine.FlagUpstreamReset, "connection_reset"},
	{engine.FlagNoHealthyUpstream, "no_healthy_upstream"},
	{engine.FlagCircuitOpen, "circuit_open"},
	{engine.FlagWasmFailure, "wasm_failure"},
	{engine.FlagFaultInjected, "fault_injected"},
	{engine.FlagRateLimited, "rate_limited"},
	{engine.FlagUnauthorized, "unauthorized"},
	{engine.FlagNoRoute, "no_route"},
	{engine.FlagBadRequest, "bad_request"},
	{engine.FlagClientGone, "client_gone"},
}
