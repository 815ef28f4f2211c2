package telemetry

import (
	"encoding/hex"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/secret"
)

// Recent keeps the waterfalls of recent requests in memory for the dashboard, independent of any
// exporter: sampled requests, errors (5xx, and 4xx when client_errors is set) and slow requests,
// each in a ring of its own so that a flood of one kind does not push out the others. A request
// is copied into a reused slot, under a lock, only when it is kept: other requests cost nothing
// here, and kept ones allocate nothing once the ring has filled.
type Recent struct {
	cfg  engine.RecentTracesConfig
	mu   sync.Mutex
	seq  uint64
	ring [3]traceRing // by kind
	// lastSampled is when (Unix ns of its start) the last request kept only for being sampled
	// started: see sampledEvery.
	lastSampled atomic.Int64
}

// sampledEvery spaces the requests kept only because they were sampled: at most one a
// millisecond. At sample_ratio 1 every request is sampled, and copying each into the ring (its
// phases, attempts and path: about 900 instructions, the ring's 200 slots of about 2.5 KiB
// written over every 6 ms at 35,000 requests a second) was a tenth of what tracing cost the
// request, and the ring showed the last 6 ms of traffic. Spaced, it shows the last 200 ms or
// more. Errors and slow requests are all kept, whatever the rate.
const sampledEvery = time.Millisecond

// The rings, by the first reason that keeps a request.
const (
	kindError = iota
	kindSlow
	kindSampled
)

// Reasons a request was kept (a bit set).
const (
	ReasonSampled = 1 << iota
	ReasonError
	ReasonSlow
)

// traceRing's slots grow as requests are kept, up to the configured size, instead of being
// allocated whole when the gateway starts: a slot is about 3.7 KiB and holds pointers, so three
// rings of the default 200 made 2.2 MiB of heap that every collection scanned, most of a quiet
// gateway's live heap, before any request was kept.
type traceRing struct {
	slots []traceSlot
	next  int
	full  bool
}

// slot returns the slot the next kept request goes into, growing the ring (doubling, from 8, up
// to size) while it has not filled; once full it is reused in turn and allocates nothing.
func (rg *traceRing) slot(size int) *traceSlot {
	if rg.next == len(rg.slots) && !rg.full {
		grown := make([]traceSlot, min(max(2*len(rg.slots), 8), size))
		copy(grown, rg.slots)
		rg.slots = grown
	}
	s := &rg.slots[rg.next]
	rg.next++
	if rg.next == size {
		rg.next, rg.full = 0, true
	}
	return s
}

// maxKeptPath bounds the path bytes a slot keeps.
const maxKeptPath = 256

// traceSlot is one kept request; its slices are reused by the next request the slot keeps.
type traceSlot struct {
	seq      uint64
	reasons  uint8
	traceID  [16]byte
	hasID    bool
	start    time.Time
	dur      int64
	status   int
	method   []byte
	path     []byte
	pipeline string
	client   netip.Addr
	flags    engine.RespFlags
	failure  error
	dropped  int
	stages   [engine.MaxStageTimes]keptStage
	nstages  int
	tries    [engine.MaxAttemptTimes]engine.AttemptTime
	ntries   int
}

type keptStage struct {
	label    string // the stage's label ("balancer" or "route" for a terminal)
	pipeline string
	t        engine.StageTime
}

func newRecent(cfg *engine.RecentTracesConfig) *Recent {
	r := &Recent{}
	r.cfg.SetDefaults()
	if cfg != nil {
		r.cfg = *cfg
	}
	// A config made in code rather than decoded from HCL may leave fields at zero.
	if r.cfg.Size < 1 || r.cfg.Size > engine.MaxRecentTraces {
		r.cfg.Size = engine.DefaultRecentTraces
	}
	if r.cfg.Slow <= 0 {
		r.cfg.Slow = engine.Duration(engine.DefaultSlowRequest)
	}
	return r
}

// Config returns the ring's settings.
func (r *Recent) Config() engine.RecentTracesConfig { return r.cfg }

// keep reports why c's request is kept (0: it is not). The caller checks this before record, so
// that requests not kept cost only this test.
func (r *Recent) keep(status int, sampled bool, start time.Time, dur time.Duration) uint8 {
	var why uint8
	if status >= 500 || (r.cfg.ClientErrors && status >= 400) {
		why |= ReasonError
	}
	if dur >= r.cfg.Slow.D() {
		why |= ReasonSlow
	}
	if sampled && (why != 0 || r.sampledTurn(start)) {
		why |= ReasonSampled
	}
	return why
}

// sampledTurn reports whether a request kept only for being sampled, started at start, goes
// into the ring (see sampledEvery).
func (r *Recent) sampledTurn(start time.Time) bool {
	now := start.UnixNano()
	last := r.lastSampled.Load()
	return now-last >= int64(sampledEvery) && r.lastSampled.CompareAndSwap(last, now) || start.IsZero()
}

// record copies c's request into a slot of the ring its reasons pick.
func (r *Recent) record(c *engine.Ctx, why uint8, status int, dur time.Duration, traceID [16]byte, hasID bool) {
	kind := kindSampled
	switch {
	case why&ReasonError != 0:
		kind = kindError
	case why&ReasonSlow != 0:
		kind = kindSlow
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.ring[kind].slot(r.cfg.Size)
	r.seq++
	s.seq, s.reasons, s.traceID, s.hasID = r.seq, why, traceID, hasID
	s.start, s.dur, s.status = c.Start, int64(dur), status
	s.method = append(s.method[:0], c.Request.Header.Method()...)
	p := rawPath(c.Request)
	if i := strings.IndexByte(string(p), '?'); i >= 0 {
		p = p[:i] // a query may carry secrets
	}
	if len(p) > maxKeptPath {
		p = p[:maxKeptPath]
	}
	s.path = append(s.path[:0], p...)
	s.pipeline = ""
	if c.Pipeline != nil {
		s.pipeline = c.Pipeline.Name
	}
	s.client, s.flags, s.failure, s.dropped = c.ClientAddr, c.Flags, c.Failure, c.StageTimesDropped()
	s.nstages = 0
	// With the stage timings off, only a timing sample's phases have times to show.
	stages := c.StageTimes()
	if !c.StageTimesTimed() && !c.StageTimesSample() {
		stages = nil
	}
	for _, st := range stages {
		k := &s.stages[s.nstages]
		s.nstages++
		k.t = st
		k.label, k.pipeline = stageLabel(st), st.Pipeline.Name
		k.t.Pipeline = nil // the slot must not keep a pipeline (its filters) alive after a reload
	}
	s.ntries = copy(s.tries[:], c.AttemptTimes())
}

// stageLabel names a recorded stage without allocating: the labels are precomputed per pipeline.
func stageLabel(st engine.StageTime) string {
	if st.Index == engine.TerminalStage {
		return st.Pipeline.TerminalKind()
	}
	if pi, ok := st.Pipeline.ObserverState().(*pipeInfo); ok && int(st.Index) < len(pi.labels) {
		return pi.labels[st.Index]
	}
	stages := st.Pipeline.Stages()
	if int(st.Index) < len(stages) {
		return stages[st.Index].Label()
	}
	return "?"
}

// TraceSummary is one kept request, as the traces list shows it.
type TraceSummary struct {
	ID         string    `json:"id"`       // the trace id, or "seq-N" when the request had none
	TraceID    string    `json:"trace_id"` // "" when tracing is off
	Time       time.Time `json:"time"`
	DurationMS float64   `json:"duration_ms"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Pipeline   string    `json:"pipeline"`
	Status     int       `json:"status"`
	Reasons    []string  `json:"reasons"` // sampled, error, slow
	Flags      string    `json:"flags,omitempty"`
}

// TraceDetail is one kept request with its waterfall.
type TraceDetail struct {
	TraceSummary
	Client      string     `json:"client,omitempty"`
	Failure     string     `json:"failure,omitempty"`
	Spans       []SpanView `json:"spans"`
	Dropped     int        `json:"dropped_spans,omitempty"`
	CollectorUI string     `json:"collector_url,omitempty"`
}

// SpanView is one bar of a waterfall: times in milliseconds since the request started.
type SpanView struct {
	Kind     string  `json:"kind"` // server, filter, terminal, attempt
	Name     string  `json:"name"`
	Pipeline string  `json:"pipeline,omitempty"`
	Phase    string  `json:"phase,omitempty"`
	Verdict  string  `json:"verdict,omitempty"`
	Status   int     `json:"status,omitempty"`
	Error    string  `json:"error,omitempty"`
	StartMS  float64 `json:"start_ms"`
	EndMS    float64 `json:"end_ms"`
	Finished bool    `json:"finished"`
}

// TraceQuery selects kept requests; zero fields match anything.
type TraceQuery struct {
	TraceID  string // a prefix of the hex trace id (or the whole "seq-N" id)
	Status   int    // exact status, or 1..5 for a class
	Pipeline string
	Path     string // a substring of the path
	Reason   string // sampled, error or slow
	Limit    int
}

// List returns the kept requests that match q, newest first.
func (r *Recent) List(q TraceQuery) []TraceSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []TraceSummary
	for i := range r.ring {
		rg := &r.ring[i]
		for j := range rg.slots {
			s := &rg.slots[j]
			if s.seq == 0 || !s.matches(q) {
				continue
			}
			out = append(out, s.summary())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// Get returns the waterfall of the kept request with id (a trace id or "seq-N").
func (r *Recent) Get(id string) (TraceDetail, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id = strings.ToLower(id)
	for i := range r.ring {
		for j := range r.ring[i].slots {
			s := &r.ring[i].slots[j]
			if s.seq != 0 && s.id() == id {
				return s.detail(r.cfg.CollectorUI), true
			}
		}
	}
	return TraceDetail{}, false
}

func (s *traceSlot) id() string {
	if s.hasID {
		return hex.EncodeToString(s.traceID[:])
	}
	return "seq-" + strconv.Itoa(int(s.seq))
}

func (s *traceSlot) matches(q TraceQuery) bool {
	if q.TraceID != "" && !strings.HasPrefix(s.id(), strings.ToLower(q.TraceID)) {
		return false
	}
	if q.Status >= 1 && q.Status <= 5 {
		if s.status/100 != q.Status {
			return false
		}
	} else if q.Status != 0 && s.status != q.Status {
		return false
	}
	if q.Pipeline != "" && s.pipeline != q.Pipeline {
		return false
	}
	if q.Path != "" && !strings.Contains(string(s.path), q.Path) {
		return false
	}
	switch q.Reason {
	case "sampled":
		return s.reasons&ReasonSampled != 0
	case "error":
		return s.reasons&ReasonError != 0
	case "slow":
		return s.reasons&ReasonSlow != 0
	}
	return true
}

func (s *traceSlot) summary() TraceSummary {
	ts := TraceSummary{
		ID: s.id(), Time: s.start.UTC(), DurationMS: ms(s.dur), Method: string(s.method),
		Path: string(s.path), Pipeline: s.pipeline, Status: s.status, Reasons: []string{},
	}
	if s.hasID {
		ts.TraceID = ts.ID
	}
	for _, r := range []struct {
		bit  uint8
		name string
	}{{ReasonSampled, "sampled"}, {ReasonError, "error"}, {ReasonSlow, "slow"}} {
		if s.reasons&r.bit != 0 {
			ts.Reasons = append(ts.Reasons, r.name)
		}
	}
	if s.flags != 0 {
		ts.Flags = string(s.flags.AppendText(nil))
	}
	return ts
}

func (s *traceSlot) detail(collectorUI string) TraceDetail {
	d := TraceDetail{TraceSummary: s.summary(), Dropped: s.dropped, Spans: []SpanView{}}
	if s.client.IsValid() {
		d.Client = s.client.String()
	}
	if s.failure != nil {
		d.Failure = secret.Text(s.failure.Error())
	}
	if collectorUI != "" && s.hasID {
		d.CollectorUI = strings.ReplaceAll(collectorUI, "{trace_id}", d.TraceID)
	}
	d.Spans = append(d.Spans, SpanView{Kind: "server", Name: d.Method + " " + s.pipeline, Pipeline: s.pipeline,
		Status: s.status, StartMS: 0, EndMS: ms(s.dur), Finished: true})
	used := make([]bool, s.ntries)
	attempt := func(i int) {
		a := s.tries[i]
		used[i] = true
		v := SpanView{Kind: "attempt", Name: "attempt " + strconv.Itoa(i+1) + " → " + a.Target, Status: a.Status,
			StartMS: ms(a.Start), EndMS: ms(a.End), Finished: a.End != 0}
		if a.Err != nil {
			v.Error = errorType(a.Err)
		}
		if !v.Finished {
			v.EndMS = v.StartMS
		}
		d.Spans = append(d.Spans, v)
	}
	for _, k := range s.stages[:s.nstages] {
		v := SpanView{Kind: "filter", Name: k.label, Pipeline: k.pipeline, Phase: k.t.Phase.String(),
			StartMS: ms(k.t.Start), EndMS: ms(k.t.End), Finished: k.t.Done}
		if k.t.Index == engine.TerminalStage {
			v.Kind, v.Phase = "terminal", ""
		} else if k.t.Phase == engine.PhaseRequest {
			v.Verdict = k.t.Verdict.String()
			v.Status = int(k.t.Status)
		}
		if !v.Finished {
			v.EndMS = v.StartMS
		}
		d.Spans = append(d.Spans, v)
		if v.Kind == "terminal" {
			// The terminal's upstream attempts ran inside it: they follow it.
			for i := range s.tries[:s.ntries] {
				a := s.tries[i]
				if !used[i] && a.Start >= k.t.Start && (k.t.End == 0 || a.Start <= k.t.End) {
					attempt(i)
				}
			}
		}
	}
	for i := range s.tries[:s.ntries] {
		if !used[i] {
			attempt(i)
		}
	}
	return d
}

func ms(ns int64) float64 { return float64(ns/1000) / 1000 }
