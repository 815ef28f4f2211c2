package engine

import (
	"time"
	_ "unsafe" // go:linkname runtime.nanotime
)

// Per-stage timings: while an Observer is installed, every request records each filter phase,
// the terminal and each upstream attempt (which ran, in what order, with what verdict, when it
// started and ended) in fixed arrays inside the Ctx (no allocation). The observer reads them at
// EndRequest: the per-filter metrics (verdicts, durations), the dashboard's per-filter costs and
// the waterfalls of sampled, failed and slow requests (engine/telemetry). Times are nanoseconds
// since Ctx.Start, read from the monotonic clock once per phase. The pipeline records a phase
// itself, inline, and calls the Observer's StartStage and EndStage only for a request that asked
// for them (ObserveStages: a traced request's spans) or a phase past the bound.

// MaxStageTimes bounds the filter phases (and terminals) one request records; a request that
// runs more (a long chain routed again by `route`) keeps the first ones and counts the rest in
// StageTimesDropped.
const MaxStageTimes = 48

// MaxAttemptTimes bounds the upstream attempts one request records.
const MaxAttemptTimes = 8

// TerminalStage is StageTime.Index of a pipeline's terminal (the balancer).
const TerminalStage = -1

// StageTime is one filter phase (or a terminal) of a request.
type StageTime struct {
	// Pipeline is the pipeline whose stage ran (a `route` terminal moves the request to another).
	Pipeline *Pipeline
	// Start and End are nanoseconds since Ctx.Start, when the request is timed (StageTimesTimed
	// or StageTimesSample); End is 0 while the phase runs (or when it panicked).
	Start, End int64
	// Index is the stage's position in Pipeline.Stages(), or TerminalStage.
	Index int16
	Phase Phase
	// Verdict is the request phase's verdict (Continue for response phases and terminals).
	Verdict Verdict
	// Status is the response status when the phase answered (Respond), else 0.
	Status uint16
	// Done says the phase returned (false while it runs, or when it panicked).
	Done bool
}

// AttemptTime is one upstream attempt of a request.
type AttemptTime struct {
	Target     string // the target's address
	Start, End int64  // nanoseconds since Ctx.Start
	Status     int    // the upstream's status (0: none)
	Err        error  // why the attempt failed, if it did
}

// StageSampleEvery: one request in StageSampleEvery (counted per Ctx) is a timing sample,
// timed even with `stage_timings = false`; the observer feeds its filter duration histogram from
// the samples only, which keeps that histogram's atomic adds off the other requests.
const StageSampleEvery = 16

// stageTimes is what a Ctx records; ReleaseCtx resets it, but for seq.
type stageTimes struct {
	n, na   uint8
	dropped uint8
	// seq counts the Ctx's requests, for the timing samples; it outlives the request.
	seq uint8
	// every says the pipeline times every request (stage timings on), sample that this request
	// is a timing sample, clock that the request reads the clock (either); set at its first
	// phase.
	every, sample, clock bool
	// observe says the observer asked for StartStage and EndStage around each filter phase
	// (ObserveStages).
	observe bool
	// noSlot says the filter phase that began last got no slot (the array was full).
	noSlot bool
	// irregular says a recorded phase answered (Respond) or panicked: the request is no pass
	// (StageTimesPass).
	irregular bool
	// last is the end of the phase that ended last, and lastOK says the next phase may start
	// there: nothing but the pipeline's loop has run since (no other phase began, and the
	// observer did no work around the two).
	last   int64
	lastOK bool
	// base is what the raw monotonic clock (nanotime) read when Ctx.Start was, so that
	// nanotime() - base is the time since the request started (see now); set at the first phase
	// of a request that reads the clock, and based says so.
	base   int64
	based  bool
	stages [MaxStageTimes]StageTime
	tries  [MaxAttemptTimes]AttemptTime
}

// hooks says the pipeline calls the observer's StartStage and EndStage around the next filter
// phase: the observer asked for them, or the phase gets no slot and the observer counts it
// itself.
func (t *stageTimes) hooks() bool { return t.observe || int(t.n) >= MaxStageTimes }

// StageTimes returns the filter phases the request recorded so far, in the order they started.
func (c *Ctx) StageTimes() []StageTime { return c.times.stages[:c.times.n] }

// AttemptTimes returns the upstream attempts the request recorded so far.
func (c *Ctx) AttemptTimes() []AttemptTime { return c.times.tries[:c.times.na] }

// StageTimesDropped counts the phases and attempts past the arrays' bounds, not recorded.
func (c *Ctx) StageTimesDropped() int { return int(c.times.dropped) }

// StageTimesPass returns the pipeline whose phases the request ran, every one of them, each
// request phase continuing, and no other phase (no answer, no panic, no `route` to another
// pipeline, none past MaxStageTimes); nil for any other request. What such a request recorded
// follows from the pipeline alone but for the times: its request phases, the terminal, then the
// response phases of the stages that have one, all Done, every verdict Continue. The observer
// counts such a request once per pipeline rather than once per phase.
func (c *Ctx) StageTimesPass() *Pipeline {
	t := &c.times
	if t.n == 0 || t.irregular || t.dropped != 0 {
		return nil
	}
	// A `route` terminal's pipeline records at least one phase more than p's own.
	if p := t.stages[0].Pipeline; int(t.n) == p.passPhases {
		return p
	}
	return nil
}

// StageTimesOn reports whether p's requests carry their phases' times (stage timings on).
func (p *Pipeline) StageTimesOn() bool { return !p.noTimes }

// StageTimesTimed reports whether every recorded phase of the request carries its times: the
// stage timings are on (the default while an observer is installed; see SetStageTimes).
func (c *Ctx) StageTimesTimed() bool { return c.times.every }

// StageTimesSample reports whether the request is a timing sample (one in StageSampleEvery):
// its phases carry their times even with the stage timings off.
func (c *Ctx) StageTimesSample() bool { return c.times.sample }

// PhaseUnrecorded reports whether the filter phase that began last has no slot in StageTimes
// (the request ran past MaxStageTimes phases). The pipeline calls the observer's EndStage for
// such a phase, which then counts it itself.
func (c *Ctx) PhaseUnrecorded() bool { return c.times.noSlot }

// ObserveStages asks for the observer's StartStage and EndStage around each filter phase of the
// rest of c's request (a traced request's spans). Without it the pipeline records the phases in
// StageTimes and calls the observer for none of them.
func (c *Ctx) ObserveStages() { c.times.observe = true }

// since is the time since the request started, in nanoseconds. time.Since reads only the
// monotonic clock when Start has a monotonic reading, as it has from time.Now.
func (c *Ctx) since() int64 { return int64(time.Since(c.Start)) }

// nanotime is the runtime's monotonic clock, the one time.Since reads, without time.Since's
// wrapping (a synctest-bubble test, the conversion from Time): about half the instructions of a
// read under callgrind. The runtime keeps this linkname for outside packages ("Do not remove or
// change the type signature", runtime/time_nofake.go).
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// clockRef and clockRefNano are one instant on both clocks: time.Now's monotonic reading and
// nanotime's differ by a constant, so an instant t's nanotime is clockRefNano + t.Sub(clockRef),
// without reading the clock (setBase).
var clockRef, clockRefNano = clockPair()

// clockPair reads time.Now between two nanotime reads, the tightest of a few tries, and takes
// the first read: times since Ctx.Start are then never early, and late by at most the gap (tens
// of nanoseconds).
func clockPair() (time.Time, int64) {
	var ref time.Time
	var refNano, gap int64
	for i := 0; i < 16; i++ {
		n1 := nanotime()
		t := time.Now()
		n2 := nanotime()
		if i == 0 || n2-n1 < gap {
			ref, refNano, gap = t, n1, n2-n1
		}
	}
	return ref, refNano
}

// setBase ties the raw clock to Ctx.Start for the rest of the request.
func (c *Ctx) setBase() {
	t := &c.times
	if c.Start.IsZero() {
		t.base = nanotime() // no start (a test's bare Ctx): times from the first phase
	} else {
		t.base = clockRefNano + int64(c.Start.Sub(clockRef))
	}
	t.based = true
}

// now is the time since the request started, in nanoseconds, once setBase has run.
func (c *Ctx) now() int64 { return nanotime() - c.times.base }

// SetStageTimes turns the per-stage timings of g's pipelines on (the default while an observer
// is installed) or off (`telemetry { stage_timings = false }`: the phases are still recorded,
// with their verdicts, but only the timing samples read the clock; the dashboard then shows no
// per-filter figures and waterfalls show filters only for samples).
func (g *Gateway) SetStageTimes(on bool) {
	for _, p := range g.Pipelines {
		p.noTimes = !on
	}
}

// quick says the next filter phase takes the pipeline's quick path (open, then closeAt or
// endStage): the observer is not called around it, it gets a slot, and it starts where the
// phase before it ended just before (lastOK, which implies that the request reads the clock).
// A request's first phase, an untimed one and a nested one take beginStage.
func (t *stageTimes) quick() bool { return t.lastOK && !t.observe && int(t.n) < MaxStageTimes }

// open records the start of stage i's phase ph of p on the quick path; it returns the slot.
// Inlined into the pipeline's loop: no call but the filter's and the clock's per phase.
func (t *stageTimes) open(p *Pipeline, i int, ph Phase) int {
	k := int(t.n)
	t.n++
	t.lastOK = false // a phase nested in this one (a `route` terminal's) reads the clock
	// The slot is zero: reset clears every slot a request used.
	s := &t.stages[k]
	s.Pipeline, s.Index, s.Phase, s.Start = p, int16(i), ph, t.last
	return k
}

// closeAt records the end of the quick path's phase in slot k, which continued, at end; the
// next phase may start there.
func (t *stageTimes) closeAt(k int, end int64) {
	s := &t.stages[k]
	s.End, s.Done = end, true
	t.last, t.lastOK = end, true
}

// beginStage records the start of stage i's phase ph of p; it returns the slot for endStage
// (-1 when the array is full). quiet says the observer did no work before it (it was not
// called, or its StartStage returned nil): the phase then starts where the previous one ended,
// if that was just before, and the clock is read once per phase instead of twice (the budget is
// 50 ns a phase; a clock read is about 20).
func (c *Ctx) beginStage(p *Pipeline, i int, ph Phase, quiet bool) int {
	t := &c.times
	if t.n == 0 {
		// The request's first phase.
		t.seq++
		t.sample = t.seq%StageSampleEvery == 0
		t.every = !p.noTimes
		t.clock = t.every || t.sample
		if t.clock && !t.based {
			c.setBase()
		}
	}
	reuse := quiet && t.lastOK
	t.lastOK = false // a phase nested in this one (a `route` terminal's) reads the clock
	if int(t.n) >= MaxStageTimes {
		if t.dropped < 255 {
			t.dropped++
		}
		t.noSlot = true
		return -1
	}
	k := int(t.n)
	t.n++
	s := &t.stages[k]
	*s = StageTime{Pipeline: p, Index: int16(i), Phase: ph}
	if !t.clock {
		return k
	}
	if reuse {
		s.Start = t.last
	} else {
		s.Start = c.now()
	}
	return k
}

// endStage records the end of the phase in slot k with its verdict. quiet says the observer
// will do no work after it (it is not called, or its token is nil), so the next phase may start
// at this end.
func (c *Ctx) endStage(k int, v Verdict, quiet bool) {
	t := &c.times
	if k < 0 {
		t.lastOK = false
		return
	}
	s := &t.stages[k]
	s.Done = true
	if t.clock {
		s.End = c.now()
		t.last, t.lastOK = s.End, quiet
	}
	if v == Respond {
		s.Verdict = Respond
		s.Status = uint16(c.Response.StatusCode())
		t.irregular = true
	}
}

// BeginAttemptTime records the start of an upstream attempt to target (the observer calls it
// from StartAttempt). A request's attempts run one after another.
func (c *Ctx) BeginAttemptTime(target string) {
	t := &c.times
	if int(t.na) >= MaxAttemptTimes {
		if t.dropped < 255 {
			t.dropped++
		}
		return
	}
	t.lastOK = false
	a := &t.tries[t.na]
	t.na++
	a.Target, a.Status, a.Err, a.End = target, 0, nil, 0
	a.Start = c.attemptNow()
}

// EndAttemptTime records the end of the attempt BeginAttemptTime started last.
func (c *Ctx) EndAttemptTime(status int, err error) {
	if c.times.na == 0 {
		return
	}
	a := &c.times.tries[c.times.na-1]
	if a.End != 0 {
		return // the last attempt was past the bound and not recorded
	}
	a.End, a.Status, a.Err = c.attemptNow(), status, err
}

// attemptNow is the time since the request started for an attempt: on the phases' clock when
// the request reads it (so that an attempt never seems to start before its terminal's phase).
func (c *Ctx) attemptNow() int64 {
	if c.times.based {
		return c.now()
	}
	return c.since()
}

// reset readies the timings for the Ctx's next request (seq goes on counting). The slots keep
// pointers (a pipeline, an error) until overwritten; clearing only what was used keeps the reset
// cheap.
func (t *stageTimes) reset() {
	if t.n > 0 {
		clear(t.stages[:t.n])
	}
	if t.na > 0 {
		clear(t.tries[:t.na])
	}
	t.n, t.na, t.dropped = 0, 0, 0
	t.every, t.sample, t.clock = false, false, false
	t.observe, t.noSlot, t.lastOK, t.based, t.irregular = false, false, false, false, false
}

// TerminalKind names p's terminal, as the dashboard labels it: "route" for a route block that
// routes the request again, else "balancer".
func (p *Pipeline) TerminalKind() string {
	if _, ok := p.terminal.(*routeTerminal); ok {
		return "route"
	}
	return "balancer"
}
