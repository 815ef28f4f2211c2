package telemetry

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// denyOn answers 403 to a request with the header X-Deny.
type denyOn struct{}

func (denyOn) OnRequest(c *engine.Ctx) engine.Verdict {
	if len(c.Request.Header.Peek("X-Deny")) > 0 {
		c.Response.SetStatusCode(403)
		return engine.Respond
	}
	return engine.Continue
}
func (denyOn) OnResponse(*engine.Ctx) {}

// RequestOnly: denyOn has no response phase.
func (denyOn) RequestOnly() {}

// metricsRig is a pipeline named name (filters "first", "second": denyOn, request-only,
// "second": again, then a terminal answering 200) with t attached.
type metricsRig struct {
	t *Telemetry
	p *engine.Pipeline
	// samples counts the timing samples, and allowedSamples those not denied.
	samples, allowedSamples int
}

func newMetricsRig(t *Telemetry, name string) *metricsRig {
	p := engine.NewPipeline(name, engine.MatchConfig{}, "", []engine.Stage{
		{Kind: "first", Filter: answer{}},
		{Kind: "second", Filter: denyOn{}},
		{Kind: "second", Filter: answer{}},
	}, engine.TerminalFunc(func(c *engine.Ctx) { c.Response.SetStatusCode(200) }))
	t.Attach(&engine.Gateway{Pipelines: []*engine.Pipeline{p}})
	return &metricsRig{t: t, p: p}
}

// serve serves one request (denied: with X-Deny), repeat times over on one Ctx before its end, as a
// `route` terminal routing it again would.
func (r *metricsRig) serve(deny bool, repeat int) {
	var fc fasthttp.RequestCtx
	fc.Request.SetRequestURI("/x")
	if deny {
		fc.Request.Header.Set("X-Deny", "1")
	}
	c := engine.AcquireCtx(&fc)
	c.Start = time.Now()
	c.ClientAddr = netip.MustParseAddr("192.0.2.7")
	o := r.t.Observer()
	o.StartRequest(c, r.p)
	for range repeat {
		r.p.Serve(c)
	}
	if c.StageTimesSample() {
		r.samples++
		if !deny {
			r.allowedSamples++
		}
	}
	o.EndRequest(c)
	engine.ReleaseCtx(c)
}

var rigRuns atomic.Int64

// uniqueName is base with a number no other call in the process got, so that a test run again
// (-count=N) reads series of its own.
func uniqueName(base string) string {
	return fmt.Sprintf("%s_%d", base, rigRuns.Add(1))
}

func verdicts(pipeline, filter, verdict string) float64 {
	flushPasses() // as a scrape does
	var m dto.Metric
	if err := filterVerdicts.WithLabelValues(pipeline, filter, verdict).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func durations(pipeline, filter, phase string) uint64 {
	return filterDuration.WithLabelValues(pipeline, filter, phase).Count()
}

// durationSeries lists the filter/phase pairs of pipeline's sluice_filter_duration_seconds
// series, sorted.
func durationSeries(pipeline string) string {
	ch := make(chan prometheus.Metric, 64)
	go func() { filterDuration.Collect(ch); close(ch) }()
	var out []string
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			panic(err)
		}
		l := map[string]string{}
		for _, lp := range d.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["pipeline"] == pipeline {
			out = append(out, l["filter"]+"/"+l["phase"])
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestFilterMetricsFromStageTimes: the verdicts of every request phase and the durations of the
// timing samples' phases are counted from the phases the pipeline recorded, with the stage
// timings on or off, traced or not; the dashboard counts the phases only with the timings on.
func TestFilterMetricsFromStageTimes(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name string
		cfg  *engine.TelemetryConfig
		// ratio >= 0 traces (filter spans: the pipeline calls the observer per phase too).
		ratio float64
	}{
		{"fm_on", nil, -1},
		{"fm_off", &engine.TelemetryConfig{StageTimings: &off}, -1},
		{"fm_traced", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tel *Telemetry
			if tc.ratio >= 0 {
				tel = testTelemetry(t, tc.ratio)
			} else {
				var err error
				if tel, err = New(tc.cfg, nil); err != nil {
					t.Fatal(err)
				}
			}
			name := uniqueName(tc.name) // the counters are the process's: -count=N runs again
			r := newMetricsRig(tel, name)
			// A request is a timing sample once in StageSampleEvery uses of a Ctx; the race
			// detector makes sync.Pool drop Ctxs at random, so requests go on (a bounded number)
			// until one was sampled.
			allowed, denied := 0, 9
			for allowed < 40 || (r.samples == 0 && allowed < 1<<14) {
				r.serve(false, 1)
				allowed++
			}
			for range denied {
				r.serve(true, 1)
			}
			for _, w := range []struct {
				filter, verdict string
				n               int
			}{
				{"first", "continue", allowed + denied},
				{"second", "continue", allowed},
				{"second", "4xx", denied},
				{"second#2", "continue", allowed},
			} {
				if got := verdicts(name, w.filter, w.verdict); got != float64(w.n) {
					t.Errorf("verdicts{filter=%q, verdict=%q} = %v, want %v", w.filter, w.verdict, got, w.n)
				}
			}
			if r.samples == 0 && tc.ratio < 0 {
				t.Fatalf("no timing sample in %d requests", allowed+denied)
			}
			for _, w := range []struct {
				filter, phase string
				n             int
			}{
				{"first", "request", r.samples},
				{"first", "response", r.samples},
				{"second", "request", r.samples},
				{"second#2", "request", r.allowedSamples},
			} {
				if got := durations(name, w.filter, w.phase); got != uint64(w.n) {
					t.Errorf("duration count{filter=%q, phase=%q} = %d, want %d (the samples)", w.filter, w.phase, got, w.n)
				}
			}
			// The request-only filter has no response series at all.
			if got := durationSeries(name); got != "first/request first/response second#2/request second#2/response second/request" {
				t.Errorf("duration series %q", got)
			}
			pc, _ := PipelineStats(r.p)
			wantCalls := uint64(allowed + denied)
			if tc.cfg != nil {
				wantCalls = 0 // timings off: no per-filter figures on the dashboard
			}
			if pc.Stages[0].Requests != wantCalls || pc.Stages[0].Responses != wantCalls {
				t.Errorf("dashboard: first ran %d request and %d response phases, want %d", pc.Stages[0].Requests, pc.Stages[0].Responses, wantCalls)
			}
			if pc.Stages[1].Requests != wantCalls || pc.Stages[1].Responses != 0 || pc.Stages[1].ResponseNanos != 0 {
				t.Errorf("dashboard: the request-only filter ran %d request and %d response phases, want %d and 0",
					pc.Stages[1].Requests, pc.Stages[1].Responses, wantCalls)
			}
		})
	}
}

// TestFilterMetricsPastTheBound: phases past engine.MaxStageTimes (a request routed again and
// again) have no slot; their verdicts are still counted, once.
func TestFilterMetricsPastTheBound(t *testing.T) {
	tel, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("fm_bound")
	r := newMetricsRig(tel, name)
	const repeat = 2*engine.MaxStageTimes/6 + 1 // 6 phases a pass: well past the bound
	r.serve(false, repeat)
	for _, f := range []string{"first", "second", "second#2"} {
		if got := verdicts(name, f, "continue"); got != repeat {
			t.Errorf("verdicts{filter=%q} = %v, want %d", f, got, repeat)
		}
	}
}

// BenchmarkStages is one request through a chain of no-op filters with the metrics-only
// observer (the default telemetry): the cost of a filter that does nothing is the difference
// per added stage; request_only_N are filters without a response phase (engine.RequestOnly).
func BenchmarkStages(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
		f    engine.Filter
	}{
		{"filters_0", 0, nil}, {"filters_1", 1, answer{}}, {"filters_5", 5, answer{}},
		{"request_only_1", 1, answerOnly{}}, {"request_only_5", 5, answerOnly{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tel, err := New(nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			stages := make([]engine.Stage, bc.n)
			for i := range stages {
				stages[i] = engine.Stage{Kind: "nop", Filter: bc.f}
			}
			p := engine.NewPipeline("bench_stages", engine.MatchConfig{}, "", stages,
				engine.TerminalFunc(func(c *engine.Ctx) { c.Response.SetStatusCode(200) }))
			tel.Attach(&engine.Gateway{Pipelines: []*engine.Pipeline{p}})
			o := tel.Observer()
			var fc fasthttp.RequestCtx
			fc.Request.SetRequestURI("/x")
			b.ReportAllocs()
			for b.Loop() {
				c := engine.AcquireCtx(&fc)
				c.Start = time.Now()
				o.StartRequest(c, p)
				p.Serve(c)
				o.EndRequest(c)
				engine.ReleaseCtx(c)
			}
		})
	}
}
