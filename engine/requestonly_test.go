package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// reqOnly is a recorder that declares it has no response phase; its OnResponse still logs, so a
// call the pipeline should have skipped shows in the log.
type reqOnly struct{ *recorder }

func (reqOnly) RequestOnly() {}

// reqOnlyPanicky panics in its request phase and has no response phase.
type reqOnlyPanicky struct{ panicky }

func (reqOnlyPanicky) RequestOnly() {}

// phaseStages builds stages from a spec: a name per stage, "name" a recorder, "name!" a
// RequestOnly recorder; respond names the stage that answers.
func phaseStages(spec, respond string, log *[]string) []Stage {
	var stages []Stage
	for _, n := range strings.Fields(spec) {
		ro := strings.HasSuffix(n, "!")
		n = strings.TrimSuffix(n, "!")
		r := &recorder{name: n, log: log, respond: n == respond}
		var f Filter = r
		if ro {
			f = reqOnly{r}
		}
		stages = append(stages, Stage{Kind: n, Filter: f})
	}
	return stages
}

// TestRequestOnlySkipsResponsePhase: a RequestOnly stage's OnResponse is never called, the other
// stages' still run in reverse order (the answering one included), with telemetry off, on the
// quick path, on the recorded path and with the observer's hooks.
func TestRequestOnlySkipsResponsePhase(t *testing.T) {
	for _, tt := range []struct {
		name, spec, respond, want string
	}{
		{"all continue", "a b! c d!", "", "a.req b.req c.req d.req terminal c.resp a.resp"},
		{"a request-only stage answers", "a b! c d!", "b", "a.req b.req a.resp"},
		{"the stage after it answers", "a b! c d!", "c", "a.req b.req c.req c.resp a.resp"},
		{"the first stage is request-only", "a! b", "", "a.req b.req terminal b.resp"},
		{"none has a response phase", "a! b! c!", "", "a.req b.req c.req terminal"},
		{"none has one, the last answers", "a! b! c!", "c", "a.req b.req c.req"},
		{"all have one", "a b", "", "a.req b.req terminal b.resp a.resp"},
	} {
		for _, mode := range []string{"no observer", "quick", "untimed", "hooks"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				var log []string
				p := NewPipeline("p", MatchConfig{}, "", phaseStages(tt.spec, tt.respond, &log),
					TerminalFunc(func(c *Ctx) { log = append(log, "terminal") }))
				o := &countingObserver{}
				if mode != "no observer" {
					p.observer = o
				}
				p.noTimes = mode == "untimed"
				var fc fasthttp.RequestCtx
				c := AcquireCtx(&fc)
				defer ReleaseCtx(c)
				c.Start = time.Now()
				if mode == "hooks" {
					c.ObserveStages()
				}
				p.Serve(c)
				if got := strings.Join(log, " "); got != tt.want {
					t.Fatalf("phases %q, want %q", got, tt.want)
				}
				if mode == "no observer" {
					return
				}
				// One recorded phase per filter phase that ran, and the terminal.
				var phases []string
				for _, s := range c.StageTimes() {
					if s.Index == TerminalStage {
						phases = append(phases, "terminal")
						continue
					}
					suffix := ".req"
					if s.Phase == PhaseResponse {
						suffix = ".resp"
					}
					phases = append(phases, p.Stages()[s.Index].Kind+suffix)
				}
				if got := strings.Join(phases, " "); got != tt.want {
					t.Errorf("recorded phases %q, want %q", got, tt.want)
				}
				filterPhases := len(log) - strings.Count(tt.want, "terminal")
				if mode == "hooks" && (o.starts != filterPhases || o.ends != filterPhases) {
					t.Errorf("%d StartStage and %d EndStage calls, want %d each", o.starts, o.ends, filterPhases)
				}
				if mode != "hooks" && (o.starts != 0 || o.ends != 0) {
					t.Errorf("%d StartStage and %d EndStage calls on a request that did not ask", o.starts, o.ends)
				}
			})
		}
	}
}

// TestRequestOnlyPanics: a panic answers 500 and the response phases of the stages before the one
// that panicked still run, skipping the RequestOnly ones.
func TestRequestOnlyPanics(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stages func(log *[]string) []Stage
		want   string
	}{
		{"in a request-only stage's request phase", func(log *[]string) []Stage {
			return []Stage{{Kind: "a", Filter: &recorder{name: "a", log: log}}, {Kind: "b", Filter: reqOnly{&recorder{name: "b", log: log}}},
				{Kind: "p", Filter: reqOnlyPanicky{}}, {Kind: "c", Filter: &recorder{name: "c", log: log}}}
		}, "a.req b.req a.resp"},
		{"in a request phase after request-only stages only", func(log *[]string) []Stage {
			return []Stage{{Kind: "b", Filter: reqOnly{&recorder{name: "b", log: log}}}, {Kind: "p", Filter: reqOnlyPanicky{}}}
		}, "b.req"},
		{"in a response phase between request-only stages", func(log *[]string) []Stage {
			return []Stage{{Kind: "a", Filter: &recorder{name: "a", log: log}}, {Kind: "b", Filter: reqOnly{&recorder{name: "b", log: log}}},
				{Kind: "p", Filter: panicky{inResponse: true}}, {Kind: "c", Filter: reqOnly{&recorder{name: "c", log: log}}},
				{Kind: "d", Filter: &recorder{name: "d", log: log}}}
		}, "a.req b.req c.req d.req d.resp a.resp"},
		{"in the first responder's response phase", func(log *[]string) []Stage {
			return []Stage{{Kind: "b", Filter: reqOnly{&recorder{name: "b", log: log}}}, {Kind: "p", Filter: panicky{inResponse: true}},
				{Kind: "c", Filter: reqOnly{&recorder{name: "c", log: log}}}}
		}, "b.req c.req"},
	} {
		for _, observed := range []bool{false, true} {
			name := tt.name
			if observed {
				name += "/observed"
			}
			t.Run(name, func(t *testing.T) {
				var log []string
				p := NewPipeline("p", MatchConfig{}, "", tt.stages(&log), TerminalFunc(func(*Ctx) {}))
				if observed {
					p.observer = nopObserver{}
				}
				var fc fasthttp.RequestCtx
				c := AcquireCtx(&fc)
				defer ReleaseCtx(c)
				c.Start = time.Now()
				p.Serve(c)
				if got := strings.Join(log, " "); got != tt.want {
					t.Errorf("phases %q, want %q", got, tt.want)
				}
				if fc.Response.StatusCode() != 500 {
					t.Errorf("status %d, want 500", fc.Response.StatusCode())
				}
				pe, ok := c.Failure.(*PanicError)
				if !ok || pe.Stage != "p" {
					t.Errorf("failure %v, want a *PanicError of stage p", c.Failure)
				}
			})
		}
	}
}

// TestServeAfterSkipsRequestOnly: a subrequest from a stage's place runs the later stages'
// response phases but the RequestOnly ones'.
func TestServeAfterSkipsRequestOnly(t *testing.T) {
	var log []string
	stages := phaseStages("a b c! d e!", "", &log)
	p := NewPipeline("p", MatchConfig{}, "", stages, TerminalFunc(func(*Ctx) { log = append(log, "terminal") }))
	var fc fasthttp.RequestCtx
	c := AcquireCtx(&fc)
	defer ReleaseCtx(c)
	p.ServeAfter(c, stages[1].Filter)
	if got, want := strings.Join(log, " "), "c.req d.req e.req terminal d.resp"; got != want {
		t.Errorf("phases %q, want %q", got, want)
	}
}

type reqOnlyAnswer struct{ answerFilter }

func (reqOnlyAnswer) RequestOnly() {}

// TestRequestOnlyAllocatesNothing: the timed path through request-only stages allocates nothing.
func TestRequestOnlyAllocatesNothing(t *testing.T) {
	p := NewPipeline("p", MatchConfig{}, "", []Stage{{Kind: "a", Filter: reqOnlyAnswer{}}, {Kind: "b", Filter: answerFilter{}}},
		TerminalFunc(func(c *Ctx) { c.Response.SetStatusCode(200) }))
	p.observer = nopObserver{}
	var fc fasthttp.RequestCtx
	allocs := testing.AllocsPerRun(200, func() {
		c := AcquireCtx(&fc)
		c.Start = time.Now()
		p.Serve(c)
		ReleaseCtx(c)
	})
	if allocs != 0 {
		t.Errorf("a request allocates %.1f times", allocs)
	}
}
