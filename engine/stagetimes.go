package engine

import "time"

// Per-stage timings: while an Observer is installed, every request records when each filter
// phase, the terminal and each upstream attempt started and ended, in fixed arrays inside the
// Ctx (no allocation). The observer reads them at EndRequest (the dashboard's per-filter costs
// and the waterfalls of sampled, failed and slow requests, engine/telemetry/recent.go). Times are
// nanoseconds since Ctx.Start, read from the monotonic clock.

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
	// Start and End are nanoseconds since Ctx.Start; End is 0 while the phase runs (or when it
	// panicked).
	Start, End int64
	// Index is the stage's position in Pipeline.Stages(), or TerminalStage.
	Index int16
	Phase Phase
	// Verdict is the request phase's verdict (Continue for response phases and terminals).
	Verdict Verdict
	// Status is the response status when the phase answered (Respond), else 0.
	Status uint16
}

// AttemptTime is one upstream attempt of a request.
type AttemptTime struct {
	Target     string // the target's address
	Start, End int64  // nanoseconds since Ctx.Start
	Status     int    // the upstream's status (0: none)
	Err        error  // why the attempt failed, if it did
}

// stageTimes is what a Ctx records; ReleaseCtx resets its counts only.
type stageTimes struct {
	n, na   uint8
	dropped uint8
	// last is the end of the phase that ended last, and lastOK says the next phase may start
	// there: nothing but the pipeline's loop has run since (no other phase began, and the
	// observer did no work around the two).
	last   int64
	lastOK bool
	stages [MaxStageTimes]StageTime
	tries  [MaxAttemptTimes]AttemptTime
}

// StageTimes returns the filter phases the request recorded so far, in the order they started.
func (c *Ctx) StageTimes() []StageTime { return c.times.stages[:c.times.n] }

// AttemptTimes returns the upstream attempts the request recorded so far.
func (c *Ctx) AttemptTimes() []AttemptTime { return c.times.tries[:c.times.na] }

// StageTimesDropped counts the phases and attempts past the arrays' bounds, not recorded.
func (c *Ctx) StageTimesDropped() int { return int(c.times.dropped) }

// since is the time since the request started, in nanoseconds. time.Since reads only the
// monotonic clock when Start has a monotonic reading, as it has from time.Now.
func (c *Ctx) since() int64 { return int64(time.Since(c.Start)) }

// SetStageTimes turns the per-stage timings of g's pipelines on (the default while an observer
// is installed) or off (`telemetry { stage_timings = false }`: the dashboard then shows no
// per-filter figures and waterfalls without filters).
func (g *Gateway) SetStageTimes(on bool) {
	for _, p := range g.Pipelines {
		p.noTimes = !on
	}
}

// beginStage records the start of stage i's phase ph of p; it returns the slot for endStage
// (-1 when the array is full or p records no timings). quiet says the observer did no work
// before it (its StartStage returned nil): the phase then starts where the previous one ended,
// if that was just before, and the clock is read once per phase instead of twice, which halves
// the cost (the budget is 50 ns a phase; a clock read is about 20).
func (c *Ctx) beginStage(p *Pipeline, i int, ph Phase, quiet bool) int {
	t := &c.times
	if p.noTimes {
		return -1
	}
	reuse := quiet && t.lastOK
	t.lastOK = false // a phase nested in this one (a `route` terminal's) reads the clock
	if int(t.n) >= MaxStageTimes {
		if t.dropped < 255 {
			t.dropped++
		}
		return -1
	}
	k := int(t.n)
	t.n++
	s := &t.stages[k]
	s.Pipeline, s.Index, s.Phase, s.Verdict, s.Status, s.End = p, int16(i), ph, Continue, 0, 0
	if reuse {
		s.Start = t.last
	} else {
		s.Start = c.since()
	}
	return k
}

// endStage records the end of the phase in slot k with its verdict. quiet says the observer
// will do no work after it (its token is nil), so the next phase may start at this end.
func (c *Ctx) endStage(k int, v Verdict, quiet bool) {
	if k < 0 {
		c.times.lastOK = false
		return
	}
	t := &c.times
	s := &t.stages[k]
	s.End = c.since()
	t.last, t.lastOK = s.End, quiet
	if v == Respond {
		s.Verdict = Respond
		s.Status = uint16(c.Response.StatusCode())
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
	a.Start = c.since()
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
	a.End, a.Status, a.Err = c.since(), status, err
}

// resetTimes readies the timings for the Ctx's next request. The slots keep pointers (a
// pipeline, an error) until overwritten; clearing only what was used keeps the reset cheap.
func (t *stageTimes) reset() {
	if t.n > 0 {
		clear(t.stages[:t.n])
	}
	if t.na > 0 {
		clear(t.tries[:t.na])
	}
	t.n, t.na, t.dropped = 0, 0, 0
	t.lastOK = false
}

// TerminalKind names p's terminal, as the dashboard labels it: "route" for a route block that
// routes the request again, else "balancer".
func (p *Pipeline) TerminalKind() string {
	if _, ok := p.terminal.(*routeTerminal); ok {
		return "route"
	}
	return "balancer"
}
