package engine

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// nopObserver installs an observer that does nothing, so that the pipeline records its timings.
type nopObserver struct{}

func (nopObserver) StartRequest(*Ctx, *Pipeline)               {}
func (nopObserver) EndRequest(*Ctx)                            {}
func (nopObserver) StartStage(*Ctx, *Stage, Phase) any         { return nil }
func (nopObserver) EndStage(*Ctx, *Stage, Phase, any, Verdict) {}

type answerFilter struct{ status int }

func (f answerFilter) OnRequest(c *Ctx) Verdict {
	if f.status != 0 {
		c.Response.SetStatusCode(f.status)
		return Respond
	}
	return Continue
}
func (answerFilter) OnResponse(*Ctx) {}

func timedPipeline(answer int) *Pipeline {
	p := NewPipeline("p", MatchConfig{}, "", []Stage{
		{Kind: "a", Filter: answerFilter{}},
		{Kind: "b", Filter: answerFilter{status: answer}},
	}, TerminalFunc(func(c *Ctx) { c.Response.SetStatusCode(200) }))
	p.observer = nopObserver{}
	return p
}

func TestStageTimesRecordEveryPhase(t *testing.T) {
	for _, tc := range []struct {
		answer int
		want   []StageTime
	}{
		{0, []StageTime{{Index: 0, Phase: PhaseRequest}, {Index: 1, Phase: PhaseRequest}, {Index: TerminalStage},
			{Index: 1, Phase: PhaseResponse}, {Index: 0, Phase: PhaseResponse}}},
		{403, []StageTime{{Index: 0, Phase: PhaseRequest}, {Index: 1, Phase: PhaseRequest, Verdict: Respond, Status: 403},
			{Index: 1, Phase: PhaseResponse}, {Index: 0, Phase: PhaseResponse}}},
	} {
		p := timedPipeline(tc.answer)
		var fc fasthttp.RequestCtx
		c := AcquireCtx(&fc)
		c.Start = time.Now()
		p.Serve(c)
		c.BeginAttemptTime("127.0.0.1:1")
		c.EndAttemptTime(502, nil)
		got := c.StageTimes()
		if len(got) != len(tc.want) {
			t.Fatalf("answer %d: %d phases recorded, want %d: %+v", tc.answer, len(got), len(tc.want), got)
		}
		var last int64
		for i, g := range got {
			w := tc.want[i]
			if g.Pipeline != p || g.Index != w.Index || g.Phase != w.Phase || g.Verdict != w.Verdict || g.Status != w.Status {
				t.Errorf("answer %d: phase %d = %+v, want %+v", tc.answer, i, g, w)
			}
			if g.Start < last || g.End < g.Start || g.End == 0 {
				t.Errorf("answer %d: phase %d runs from %d to %d, after %d", tc.answer, i, g.Start, g.End, last)
			}
			last = g.Start
		}
		if a := c.AttemptTimes(); len(a) != 1 || a[0].Status != 502 || a[0].Target != "127.0.0.1:1" || a[0].End < a[0].Start {
			t.Errorf("attempts = %+v", a)
		}
		ReleaseCtx(c)
		c = AcquireCtx(&fc)
		if len(c.StageTimes()) != 0 || len(c.AttemptTimes()) != 0 {
			t.Errorf("a reused Ctx starts with timings: %+v", c.StageTimes())
		}
		ReleaseCtx(c)
	}
}

func TestStageTimesBoundedAndOff(t *testing.T) {
	p := timedPipeline(0)
	var fc fasthttp.RequestCtx
	c := AcquireCtx(&fc)
	defer ReleaseCtx(c)
	c.Start = time.Now()
	for c.StageTimesDropped() == 0 {
		p.Serve(c) // a request routed again and again
	}
	if len(c.StageTimes()) != MaxStageTimes {
		t.Errorf("%d phases kept, want the bound %d", len(c.StageTimes()), MaxStageTimes)
	}
	for range MaxAttemptTimes + 2 {
		c.BeginAttemptTime("t")
		c.EndAttemptTime(200, nil)
	}
	if len(c.AttemptTimes()) != MaxAttemptTimes {
		t.Errorf("%d attempts kept, want %d", len(c.AttemptTimes()), MaxAttemptTimes)
	}

}

// TestStageTimesOff: with stage_timings = false every request still records its phases (for the
// verdict counts) but reads no clock, except one request in StageSampleEvery.
func TestStageTimesOff(t *testing.T) {
	g := &Gateway{Pipelines: []*Pipeline{timedPipeline(403)}}
	g.SetStageTimes(false)
	var fc fasthttp.RequestCtx
	c := AcquireCtx(&fc)
	defer ReleaseCtx(c)
	samples := 0
	for range 2 * StageSampleEvery {
		c.Start = time.Now()
		g.Pipelines[0].Serve(c)
		got := c.StageTimes()
		if len(got) != 4 || c.StageTimesTimed() {
			t.Fatalf("stage_timings = false: %d phases recorded (want 4), timed %v", len(got), c.StageTimesTimed())
		}
		if got[1].Verdict != Respond || got[1].Status != 403 {
			t.Errorf("the answering phase is recorded as %+v", got[1])
		}
		for i, s := range got {
			if !s.Done {
				t.Errorf("phase %d not done: %+v", i, s)
			}
			if timed := s.End != 0; timed != c.StageTimesSample() {
				t.Errorf("phase %d: times %d..%d on a request whose sample flag is %v", i, s.Start, s.End, c.StageTimesSample())
			}
		}
		if c.StageTimesSample() {
			samples++
		}
		c.times.reset()
	}
	if samples != 2 {
		t.Errorf("%d timing samples in %d requests, want 2", samples, 2*StageSampleEvery)
	}
}

// TestStageHooks: the observer is called around the filter phases only of a request that asked
// for it, and for the phases past the bound, which it is told have no slot.
func TestStageHooks(t *testing.T) {
	p := timedPipeline(0)
	o := &countingObserver{}
	p.observer = o
	var fc fasthttp.RequestCtx
	c := AcquireCtx(&fc)
	defer ReleaseCtx(c)
	c.Start = time.Now()
	p.Serve(c)
	if o.starts != 0 || o.ends != 0 {
		t.Errorf("a request that did not ask: %d StartStage, %d EndStage calls", o.starts, o.ends)
	}
	c.times.reset()
	c.ObserveStages()
	p.Serve(c)
	if o.starts != 4 || o.ends != 4 || o.unrecorded != 0 {
		t.Errorf("a request that asked: %d StartStage, %d EndStage calls (%d unrecorded), want 4, 4 (0)", o.starts, o.ends, o.unrecorded)
	}
	c.times.reset()
	*o = countingObserver{}
	for len(c.StageTimes()) < MaxStageTimes {
		p.Serve(c) // a request routed again and again
	}
	if o.starts != o.unrecorded {
		t.Errorf("%d StartStage calls for %d phases past the bound", o.starts, o.unrecorded)
	}
	*o = countingObserver{}
	p.Serve(c)
	if o.starts != 4 || o.ends != 4 || o.unrecorded != 4 {
		t.Errorf("past the bound: %d StartStage, %d EndStage calls (%d unrecorded), want 4 each", o.starts, o.ends, o.unrecorded)
	}
}

type countingObserver struct {
	nopObserver
	starts, ends, unrecorded int
}

func (o *countingObserver) StartStage(*Ctx, *Stage, Phase) any { o.starts++; return nil }
func (o *countingObserver) EndStage(c *Ctx, _ *Stage, _ Phase, _ any, _ Verdict) {
	o.ends++
	if c.PhaseUnrecorded() {
		o.unrecorded++
	}
}

func TestStageTimesAllocateNothing(t *testing.T) {
	p := timedPipeline(0)
	var fc fasthttp.RequestCtx
	allocs := testing.AllocsPerRun(200, func() {
		c := AcquireCtx(&fc)
		c.Start = time.Now()
		p.Serve(c)
		c.BeginAttemptTime("127.0.0.1:1")
		c.EndAttemptTime(200, nil)
		ReleaseCtx(c)
	})
	if allocs != 0 {
		t.Errorf("a timed request allocates %.1f times", allocs)
	}
}

// BenchmarkStageTime is the cost of timing one filter phase (issue 33's budget: 50 ns): the
// start and end the pipeline records around it.
func BenchmarkStageTime(b *testing.B) {
	p := timedPipeline(0)
	var fc fasthttp.RequestCtx
	c := AcquireCtx(&fc)
	defer ReleaseCtx(c)
	c.Start = time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%MaxStageTimes == 0 {
			c.times.reset()
		}
		k := c.beginStage(p, 1, PhaseRequest, true)
		c.endStage(k, Continue, true)
	}
}

// BenchmarkPipelineTimed serves a two-filter pipeline (five timed phases) with and without the
// timings, through an observer that does nothing.
func BenchmarkPipelineTimed(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			p := timedPipeline(0)
			p.noTimes = !on
			var fc fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				c := AcquireCtx(&fc)
				c.Start = time.Now()
				p.Serve(c)
				ReleaseCtx(c)
			}
		})
	}
}

// panicFilter panics in its request or response phase.
type panicFilter struct{ inResponse bool }

func (f panicFilter) OnRequest(*Ctx) Verdict {
	if !f.inResponse {
		panic("request")
	}
	return Continue
}
func (f panicFilter) OnResponse(*Ctx) {
	if f.inResponse {
		panic("response")
	}
}

// TestStageTimesPass: only a request that ran every phase of its pipeline, continuing, is a
// pass; an answer, a panic, a second pipeline's phases or phases past the bound make it none.
func TestStageTimesPass(t *testing.T) {
	serve := func(p *Pipeline, repeat int) *Pipeline {
		var fc fasthttp.RequestCtx
		c := AcquireCtx(&fc)
		defer ReleaseCtx(c)
		c.Start = time.Now()
		for range repeat {
			p.Serve(c)
		}
		return c.StageTimesPass()
	}
	p := timedPipeline(0)
	if got := serve(p, 1); got != p {
		t.Errorf("a request through every phase: pass of %v, want the pipeline", got)
	}
	if got := serve(timedPipeline(403), 1); got != nil {
		t.Error("an answered request is a pass")
	}
	if got := serve(p, 2); got != nil {
		t.Error("a request served twice (routed again) is a pass")
	}
	if got := serve(p, MaxStageTimes); got != nil {
		t.Error("a request past the bound is a pass")
	}
	for _, inResponse := range []bool{false, true} {
		pp := NewPipeline("p", MatchConfig{}, "", []Stage{{Kind: "a", Filter: answerFilter{}},
			{Kind: "panics", Filter: panicFilter{inResponse}}}, TerminalFunc(func(c *Ctx) { c.Response.SetStatusCode(200) }))
		pp.observer = nopObserver{}
		if got := serve(pp, 1); got != nil {
			t.Errorf("a request whose filter panicked (in the response phase: %v) is a pass", inResponse)
		}
	}
	ro := NewPipeline("ro", MatchConfig{}, "", []Stage{{Kind: "a", Filter: passOnly{}}},
		TerminalFunc(func(c *Ctx) { c.Response.SetStatusCode(200) }))
	ro.observer = nopObserver{}
	if got := serve(ro, 1); got != ro {
		t.Error("a request through a request-only filter is no pass")
	}
}

// passOnly continues and has no response phase.
type passOnly struct{ answerFilter }

func (passOnly) RequestOnly() {}
