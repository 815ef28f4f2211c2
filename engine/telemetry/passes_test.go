package telemetry

import (
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"

	"github.com/sluice-gateway/sluice/engine/metrics"
)

// scrapedVerdicts reads a sluice_filter_verdicts_total series as /metrics serves it (the
// registry's Gather, which folds the passes in).
func scrapedVerdicts(t *testing.T, pipeline, filter, verdict string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_filter_verdicts_total" {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"pipeline": pipeline, "filter": filter, "verdict": verdict}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestPassesScrapedAcrossReload: requests that ran every phase are counted once per pipeline;
// a scrape reads them in each stage's "continue" verdicts, exactly, and the dashboard in its
// phase counts, also for a pipeline a reload replaced while its last requests still run.
func TestPassesScrapedAcrossReload(t *testing.T) {
	tel, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("passes")
	old := newMetricsRig(tel, name)
	for range 20 {
		old.serve(false, 1)
	}
	old.serve(true, 1) // answered by "second": no pass
	if got := scrapedVerdicts(t, name, "first", "continue"); got != 21 {
		t.Errorf("scraped first/continue = %v, want 21", got)
	}
	if got := scrapedVerdicts(t, name, "second#2", "continue"); got != 20 {
		t.Errorf("scraped second#2/continue = %v, want 20", got)
	}
	// A reload: the pipeline of the same name is built again; the old one's requests drain.
	cur := newMetricsRig(tel, name)
	for range 5 {
		old.serve(false, 1)
	}
	for range 3 {
		cur.serve(false, 1)
	}
	flushPasses() // retires the old pipeline's passes (folding what it had)
	for range 4 {
		old.serve(false, 1)
	}
	if got := scrapedVerdicts(t, name, "first", "continue"); got != 21+5+3+4 {
		t.Errorf("scraped first/continue after the reload = %v, want %d", got, 21+5+3+4)
	}
	for _, c := range []struct {
		r              *metricsRig
		want, terminal uint64 // the denied request did not reach the terminal
	}{{old, 21 + 5 + 4, 20 + 5 + 4}, {cur, 3, 3}} {
		pc, ok := PipelineStats(c.r.p)
		if !ok {
			t.Fatal("no dashboard counters")
		}
		if pc.Stages[0].Requests != c.want || pc.Stages[0].Responses != c.want || pc.Terminal.Requests != c.terminal {
			t.Errorf("dashboard: first ran %d request and %d response phases, the terminal %d; want %d, %d, %d",
				pc.Stages[0].Requests, pc.Stages[0].Responses, pc.Terminal.Requests, c.want, c.want, c.terminal)
		}
		if pc.Stages[1].Responses != 0 {
			t.Errorf("dashboard: the request-only filter ran %d response phases", pc.Stages[1].Responses)
		}
	}
}

// TestPassNanos: a pass adds each recorded phase's time to its own stage and phase on the
// dashboard (the terminal's to the terminal), as counting phase by phase did.
func TestPassNanos(t *testing.T) {
	tel, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newMetricsRig(tel, uniqueName("pass_nanos"))
	var fc fasthttp.RequestCtx
	fc.Request.SetRequestURI("/x")
	c := engine.AcquireCtx(&fc)
	c.Start = time.Now()
	o := tel.Observer()
	o.StartRequest(c, r.p)
	r.p.Serve(c)
	if c.StageTimesPass() != r.p {
		t.Fatal("the request is no pass")
	}
	want := make([][2]uint64, len(r.p.Stages())+1) // by stage, the terminal last
	for _, st := range c.StageTimes() {
		i := int(st.Index)
		if st.Index == engine.TerminalStage {
			i = len(want) - 1
		}
		want[i][st.Phase] += uint64(st.End - st.Start)
	}
	o.EndRequest(c)
	engine.ReleaseCtx(c)
	pc, _ := PipelineStats(r.p)
	for i, sc := range append(pc.Stages, pc.Terminal) {
		if got := [2]uint64{sc.RequestNanos, sc.ResponseNanos}; got != want[i] {
			t.Errorf("stage %d: request and response nanos %v, want %v", i, got, want[i])
		}
	}
}
