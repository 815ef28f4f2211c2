package telemetry

import (
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/secret"
)

// The dashboard's live counters: per pipeline (requests by status class, a latency histogram) and
// per stage (calls and time by phase, answers by status class), plain atomics read by the admin
// API. They are fed at EndRequest from the per-stage timings the engine records in the Ctx
// (engine/stagetimes.go, read by stagesDone): one atomic add per filter phase for its time, and
// one per request for the phase counts when the request ran every phase of its pipeline (a pass,
// passes.go; PipelineStats adds the passes), else two per phase.

// LatencyBoundsMS are the upper bounds of the dashboard's latency buckets, in milliseconds; one
// more bucket counts what is above the last.
var LatencyBoundsMS = [...]float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

var latencyBoundsNS = func() (b [len(LatencyBoundsMS)]int64) {
	for i, ms := range LatencyBoundsMS {
		b[i] = int64(ms * 1e6)
	}
	return b
}()

type dashPipe struct {
	byClass  [6]atomic.Uint64 // index status/100; 0: anything else
	latency  [len(LatencyBoundsMS) + 1]atomic.Uint64
	stages   []dashStage
	terminal dashStage
}

type dashStage struct {
	calls    [2]atomic.Uint64 // by engine.Phase
	nanos    [2]atomic.Uint64
	answered [6]atomic.Uint64 // request phases that answered, by status class
}

func newDashPipe(stages int) *dashPipe { return &dashPipe{stages: make([]dashStage, stages)} }

// count adds one recorded phase (timed and Done) to the stage's counters.
func (s *dashStage) count(st *engine.StageTime) {
	s.calls[st.Phase&1].Add(1)
	s.nanos[st.Phase&1].Add(uint64(st.End - st.Start))
	if st.Verdict == engine.Respond {
		k := int(st.Status) / 100
		if k < 1 || k > 5 {
			k = 0
		}
		s.answered[k].Add(1)
	}
}

// recordDash counts c's request on its pipeline (its phases are counted on their stages by
// stagesDone).
func (o *observer) recordDash(pi *pipeInfo, status int, dur time.Duration) {
	if pi.dash == nil {
		return
	}
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	pi.dash.byClass[class].Add(1)
	b := 0
	for b < len(latencyBoundsNS) && int64(dur) > latencyBoundsNS[b] {
		b++
	}
	pi.dash.latency[b].Add(1)
}

// PipelineCounters are a pipeline's dashboard counters since it was built (a reload starts
// them again).
type PipelineCounters struct {
	// ByClass counts responses by status class: index 1..5 for 1xx..5xx, 0 for anything else.
	ByClass [6]uint64 `json:"by_class"`
	// Latency counts requests per bucket of LatencyBoundsMS (the last: above them all).
	Latency  []uint64        `json:"latency"`
	Stages   []StageCounters `json:"stages"`
	Terminal StageCounters   `json:"terminal"`
}

// StageCounters are one stage's counters.
type StageCounters struct {
	Kind          string    `json:"kind"`
	Label         string    `json:"label"`
	Requests      uint64    `json:"requests"`       // request phases run
	RequestNanos  uint64    `json:"request_nanos"`  // their total time
	Responses     uint64    `json:"responses"`      // response phases run
	ResponseNanos uint64    `json:"response_nanos"` // their total time
	Answered      [6]uint64 `json:"answered"`       // request phases that answered, by status class
}

// PipelineStats returns p's counters; false when p is not served by a Telemetry's observer.
func PipelineStats(p *engine.Pipeline) (PipelineCounters, bool) {
	pi, ok := p.ObserverState().(*pipeInfo)
	if !ok || pi.dash == nil {
		return PipelineCounters{}, false
	}
	d := pi.dash
	var pc PipelineCounters
	for i := range d.byClass {
		pc.ByClass[i] = d.byClass[i].Load()
	}
	pc.Latency = make([]uint64, len(d.latency))
	for i := range d.latency {
		pc.Latency[i] = d.latency[i].Load()
	}
	stages := p.Stages()
	passes := pi.dashPasses(p) // requests that ran every phase, counted once (passes.go)
	pc.Stages = make([]StageCounters, len(d.stages))
	for i := range d.stages {
		pc.Stages[i] = d.stages[i].counters(stages[i].Kind, stages[i].Label())
		pc.Stages[i].Requests += passes
		if !stages[i].RequestOnly() {
			pc.Stages[i].Responses += passes
		}
	}
	pc.Terminal = d.terminal.counters(p.TerminalKind(), p.TerminalKind())
	pc.Terminal.Requests += passes
	return pc, true
}

func (s *dashStage) counters(kind, label string) StageCounters {
	sc := StageCounters{Kind: kind, Label: label,
		Requests: s.calls[engine.PhaseRequest].Load(), RequestNanos: s.nanos[engine.PhaseRequest].Load(),
		Responses: s.calls[engine.PhaseResponse].Load(), ResponseNanos: s.nanos[engine.PhaseResponse].Load()}
	for i := range s.answered {
		sc.Answered[i] = s.answered[i].Load()
	}
	return sc
}

// Refusals and auth failures, for the dashboard's "rate limits and auth" page.

// maxRefusedKeys bounds the distinct keys counted; refusals of further keys count in Other.
const maxRefusedKeys = 512

// maxAuthEvents is how many recent 401/403 answers are kept.
const maxAuthEvents = 64

type refusedKey struct {
	pipeline, stage string
	client          netip.Addr
	consumer        string
}

type refusedCount struct {
	n    uint64
	last time.Time
}

type edgeStats struct {
	mu      sync.Mutex
	refused map[refusedKey]*refusedCount
	other   uint64
	auth    [maxAuthEvents]authEvent
	next    int
	seq     uint64
}

type authEvent struct {
	seq       uint64
	at        time.Time
	status    int
	pipeline  string
	stage     string
	path      []byte
	client    netip.Addr
	consumer  string
	challenge []byte
	failure   error
}

// answeredBy is the label of the request phase that answered c's request ("" if none did).
func answeredBy(c *engine.Ctx) string {
	ts := c.StageTimes()
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Verdict == engine.Respond && ts[i].Phase == engine.PhaseRequest {
			return stageLabel(ts[i])
		}
	}
	return ""
}

// record notes a 429 (the refused key: the verified consumer, else the client address) or a
// 401/403 (why, without secrets). Only those statuses come here.
func (e *edgeStats) record(c *engine.Ctx, status int) {
	pipeline := ""
	if c.Pipeline != nil {
		pipeline = c.Pipeline.Name
	}
	consumer := ""
	if cs, ok := engine.ConsumerKey.Get(c); ok && cs != nil {
		consumer = cs.ID
	}
	stage := answeredBy(c)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if status == 429 {
		k := refusedKey{pipeline: pipeline, stage: stage, consumer: consumer}
		if consumer == "" {
			k.client = c.ClientAddr
		}
		rc := e.refused[k]
		if rc == nil {
			if len(e.refused) >= maxRefusedKeys {
				e.other++
				return
			}
			if e.refused == nil {
				e.refused = map[refusedKey]*refusedCount{}
			}
			rc = &refusedCount{}
			e.refused[k] = rc
		}
		rc.n++
		rc.last = now
		return
	}
	a := &e.auth[e.next]
	e.next = (e.next + 1) % maxAuthEvents
	e.seq++
	p := rawPath(c.Request)
	for i, b := range p {
		if b == '?' {
			p = p[:i] // a query may carry credentials
			break
		}
	}
	if len(p) > maxKeptPath {
		p = p[:maxKeptPath]
	}
	ch := c.Response.Header.Peek("WWW-Authenticate")
	if len(ch) > 200 {
		ch = ch[:200]
	}
	a.seq, a.at, a.status, a.pipeline, a.stage = e.seq, now, status, pipeline, stage
	a.path = append(a.path[:0], p...)
	a.client, a.consumer, a.failure = c.ClientAddr, consumer, c.Failure
	a.challenge = append(a.challenge[:0], ch...)
}

// RefusedKey is one key's rate-limit refusals (429).
type RefusedKey struct {
	Pipeline string    `json:"pipeline"`
	Stage    string    `json:"stage"`              // the filter that refused
	Consumer string    `json:"consumer,omitempty"` // the verified consumer, when one was
	Client   string    `json:"client,omitempty"`   // else the client address
	Refused  uint64    `json:"refused"`
	Last     time.Time `json:"last"`
}

// AuthEvent is one recent 401 or 403.
type AuthEvent struct {
	Time      time.Time `json:"time"`
	Status    int       `json:"status"`
	Pipeline  string    `json:"pipeline"`
	Stage     string    `json:"stage"` // the filter that answered
	Path      string    `json:"path"`  // without the query
	Client    string    `json:"client,omitempty"`
	Consumer  string    `json:"consumer,omitempty"`
	Challenge string    `json:"challenge,omitempty"` // the WWW-Authenticate answer (an error code, never a credential)
	Failure   string    `json:"failure,omitempty"`   // redacted
}

// EdgeReport is the rate-limit and auth summary.
type EdgeReport struct {
	TopRefused   []RefusedKey `json:"top_refused"`
	OtherRefused uint64       `json:"other_refused"` // refusals of keys past the first 512
	RecentAuth   []AuthEvent  `json:"recent_auth"`
}

// Edge returns the top refused keys (at most limit) and the recent 401/403 answers, newest first.
func (t *Telemetry) Edge(limit int) EdgeReport {
	e := &t.edge
	e.mu.Lock()
	defer e.mu.Unlock()
	r := EdgeReport{TopRefused: []RefusedKey{}, RecentAuth: []AuthEvent{}, OtherRefused: e.other}
	for k, v := range e.refused {
		rk := RefusedKey{Pipeline: k.pipeline, Stage: k.stage, Consumer: k.consumer, Refused: v.n, Last: v.last.UTC()}
		if k.client.IsValid() {
			rk.Client = k.client.String()
		}
		r.TopRefused = append(r.TopRefused, rk)
	}
	sort.Slice(r.TopRefused, func(i, j int) bool { return r.TopRefused[i].Refused > r.TopRefused[j].Refused })
	if limit > 0 && len(r.TopRefused) > limit {
		r.TopRefused = r.TopRefused[:limit]
	}
	for i := range e.auth {
		a := &e.auth[i]
		if a.seq == 0 {
			continue
		}
		ev := AuthEvent{Time: a.at.UTC(), Status: a.status, Pipeline: a.pipeline, Stage: a.stage,
			Path: string(a.path), Consumer: a.consumer, Challenge: secret.Text(string(a.challenge))}
		if a.client.IsValid() {
			ev.Client = a.client.String()
		}
		if a.failure != nil {
			ev.Failure = secret.Text(a.failure.Error())
		}
		r.RecentAuth = append(r.RecentAuth, ev)
	}
	sort.Slice(r.RecentAuth, func(i, j int) bool { return r.RecentAuth[i].Time.After(r.RecentAuth[j].Time) })
	return r
}

// ReloadInfo is the result of the last configuration reload.
type ReloadInfo struct {
	Time        time.Time `json:"time"`
	OK          bool      `json:"ok"`
	Error       string    `json:"error,omitempty"`
	Diagnostics string    `json:"diagnostics,omitempty"`
}

var lastReload atomic.Pointer[ReloadInfo]

// RecordReload keeps the result of a reload (or of the initial load) for the dashboard. The
// diagnostics come redacted (hcl.WriteDiagnostics); the error is redacted here.
func RecordReload(err error, diagnostics string) {
	ri := &ReloadInfo{Time: time.Now().UTC(), OK: err == nil, Diagnostics: diagnostics}
	if err != nil {
		ri.Error = secret.Text(err.Error())
	}
	lastReload.Store(ri)
}

// LastReload returns the last reload's result (nil before the first).
func LastReload() *ReloadInfo { return lastReload.Load() }

// FromObserver returns the Telemetry whose observer o is, or nil.
func FromObserver(o engine.Observer) *Telemetry {
	if ob, ok := o.(*observer); ok {
		return ob.t
	}
	return nil
}

// Recent returns the ring of kept waterfalls.
func (t *Telemetry) Recent() *Recent { return t.recent }

// dashboard feeds the dashboard at the end of a request: the counters, the refusal and auth
// summaries, and the ring of waterfalls when the request is kept.
// dur is the request's duration so far (0 when c.Start is not set).
func (o *observer) dashboard(c *engine.Ctx, st *reqState, pi *pipeInfo, status int, dur time.Duration) {
	o.recordDash(pi, status, dur)
	if status == 429 || status == 401 || status == 403 {
		o.t.edge.record(c, status)
	}
	sampled := st != nil && st.sampled
	if why := o.t.recent.keep(status, sampled, c.Start, dur); why != 0 {
		var id [16]byte
		if st != nil {
			id = st.traceID
		}
		o.t.recent.record(c, why, status, dur, id, st != nil)
	}
}
