package telemetry

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// answerOnly is answer without a response phase (engine.RequestOnly).
type answerOnly struct{ answer }

func (answerOnly) RequestOnly() {}

// requestOnlyPipeline is pipeline name of three filters, "first" (answer), "second" (answerOnly,
// answering status), "third" (answer), ending in a terminal that makes one attempt and answers
// 503, with t's observer attached.
func requestOnlyPipeline(t *Telemetry, name string, status int) *engine.Pipeline {
	p := engine.NewPipeline(name, engine.MatchConfig{}, "", []engine.Stage{
		{Kind: "first", Filter: answer{}},
		{Kind: "second", Filter: answerOnly{answer{status: status}}},
		{Kind: "third", Filter: answer{}},
	}, engine.TerminalFunc(func(c *engine.Ctx) {
		c.BeginAttemptTime("127.0.0.1:9")
		c.Response.SetStatusCode(503)
		c.EndAttemptTime(503, nil)
	}))
	t.Attach(&engine.Gateway{Pipelines: []*engine.Pipeline{p}})
	return p
}

// TestRequestOnlySpans: a sampled request's request-only filter gets one span, its request
// phase's; the others get both, in the usual order.
func TestRequestOnlySpans(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{0, "first request,second request,third request,third response,first response,GET /*"},
		{401, "first request,second request,first response,GET /*"}, // the request-only filter answers
	} {
		col := &collectingExporter{}
		tel, err := New(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ratio := 1.0
		tel.startTracing(&engine.TelemetryConfig{ServiceName: "ro", Traces: &engine.TracesConfig{Exporter: "otlp", SampleRatio: &ratio}}, col)
		serveOne(tel, requestOnlyPipeline(tel, "ro", tc.status), "/x")
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range col.spans {
			names = append(names, s.Name())
			if s.Name() == "second request" {
				for _, kv := range s.Attributes() {
					if kv.Key == attrPhase && kv.Value.AsString() != "request" {
						t.Errorf("second request span: sluice.phase = %q", kv.Value.AsString())
					}
				}
			}
		}
		if got := strings.Join(names, ","); got != tc.want {
			t.Errorf("answer %d: spans\n %s\nwant\n %s", tc.status, got, tc.want)
		}
	}
}

// TestRequestOnlyWaterfallAndCounters: the waterfall of a kept request shows a request-only
// filter's request phase only, and the dashboard counts its request phases and no response phase.
func TestRequestOnlyWaterfallAndCounters(t *testing.T) {
	tel, err := New(&engine.TelemetryConfig{RecentTraces: &engine.RecentTracesConfig{Size: 4, Slow: engine.Duration(time.Hour)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("ro") // the verdict counters are the process's: -count=N runs again
	p := requestOnlyPipeline(tel, name, 0)
	for range 3 {
		serveOne(tel, p, "/broken")
	}
	got := tel.Recent().List(TraceQuery{Reason: "error"})
	if len(got) == 0 {
		t.Fatal("no 503 kept")
	}
	d, _ := tel.Recent().Get(got[0].ID)
	var names []string
	for _, s := range d.Spans {
		names = append(names, s.Kind+":"+s.Name+":"+s.Phase)
	}
	want := "server:GET " + name + ": filter:first:request filter:second:request filter:third:request terminal:balancer: attempt:attempt 1 → 127.0.0.1:9: filter:third:response filter:first:response"
	if strings.Join(names, " ") != want {
		t.Errorf("waterfall\n%s\nwant\n%s", strings.Join(names, " "), want)
	}
	pc, has := PipelineStats(p)
	if !has {
		t.Fatal("no counters")
	}
	for i, w := range []struct{ requests, responses uint64 }{{3, 3}, {3, 0}, {3, 3}} {
		if s := pc.Stages[i]; s.Requests != w.requests || s.Responses != w.responses || (w.responses == 0 && s.ResponseNanos != 0) {
			t.Errorf("stage %d: %d request and %d response phases (%d ns), want %d and %d", i, s.Requests, s.Responses, s.ResponseNanos, w.requests, w.responses)
		}
	}
	for _, f := range []string{"first", "second", "third"} {
		if got := verdicts(name, f, "continue"); got != 3 {
			t.Errorf("verdicts{filter=%q, continue} = %v, want 3", f, got)
		}
	}
}
