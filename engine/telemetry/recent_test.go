package telemetry

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// answer is a filter that answers status (0: continues), with a challenge for 401.
type answer struct{ status int }

func (a answer) OnRequest(c *engine.Ctx) engine.Verdict {
	if a.status == 0 {
		return engine.Continue
	}
	c.Response.SetStatusCode(a.status)
	if a.status == 401 {
		c.Response.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	return engine.Respond
}
func (answer) OnResponse(*engine.Ctx) {}

// dashGateway is a gateway of one pipeline ("p": filters "first" and "second", then a terminal
// answering termStatus), with t's observer attached.
func dashGateway(t *Telemetry, second, termStatus int) *engine.Pipeline {
	p := engine.NewPipeline("p", engine.MatchConfig{}, "", []engine.Stage{
		{Kind: "first", Filter: answer{}},
		{Kind: "second", Filter: answer{status: second}},
	}, engine.TerminalFunc(func(c *engine.Ctx) {
		c.BeginAttemptTime("127.0.0.1:9")
		c.Response.SetStatusCode(termStatus)
		c.EndAttemptTime(termStatus, nil)
	}))
	t.Attach(&engine.Gateway{Pipelines: []*engine.Pipeline{p}})
	return p
}

func serveOne(t *Telemetry, p *engine.Pipeline, uri string) {
	var fc fasthttp.RequestCtx
	fc.Request.SetRequestURI(uri)
	c := engine.AcquireCtx(&fc)
	c.Start = time.Now()
	c.ClientAddr = netip.MustParseAddr("192.0.2.7")
	o := t.Observer()
	o.StartRequest(c, p)
	p.Serve(c)
	o.EndRequest(c)
	engine.ReleaseCtx(c)
}

func TestRecentKeepsErrorsBoundedWithWaterfalls(t *testing.T) {
	tel, err := New(&engine.TelemetryConfig{RecentTraces: &engine.RecentTracesConfig{Size: 2, Slow: engine.Duration(time.Hour)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := dashGateway(tel, 0, 200)
	for range 5 {
		serveOne(tel, ok, "/fine")
	}
	if got := tel.Recent().List(TraceQuery{}); len(got) != 0 {
		t.Fatalf("fast 200s without tracing were kept: %+v", got)
	}
	failing := dashGateway(tel, 0, 503)
	for i := range 3 {
		serveOne(tel, failing, "/broken/"+string(rune('a'+i))+"?token=secret")
	}
	got := tel.Recent().List(TraceQuery{Reason: "error"})
	if len(got) != 2 || got[0].Path != "/broken/c" || got[1].Path != "/broken/b" {
		t.Fatalf("error ring = %+v, want the last two 503s, newest first", got)
	}
	if got[0].TraceID != "" || !strings.HasPrefix(got[0].ID, "seq-") || got[0].Status != 503 {
		t.Errorf("an untraced kept request = %+v", got[0])
	}
	d, found := tel.Recent().Get(got[0].ID)
	if !found {
		t.Fatalf("Get(%s) found nothing", got[0].ID)
	}
	var names []string
	for _, s := range d.Spans {
		names = append(names, s.Kind+":"+s.Name+":"+s.Phase)
		if s.EndMS < s.StartMS || !s.Finished {
			t.Errorf("span %+v", s)
		}
	}
	want := "server:GET p: filter:first:request filter:second:request terminal:balancer: attempt:attempt 1 → 127.0.0.1:9: filter:second:response filter:first:response"
	if strings.Join(names, " ") != want {
		t.Errorf("waterfall\n%s\nwant\n%s", strings.Join(names, " "), want)
	}
	if d.Client != "192.0.2.7" || strings.Contains(d.Path, "secret") {
		t.Errorf("detail = %+v", d)
	}
	if q := tel.Recent().List(TraceQuery{Status: 5, Path: "/broken/b"}); len(q) != 1 {
		t.Errorf("search by status class and path: %+v", q)
	}
	if q := tel.Recent().List(TraceQuery{Pipeline: "other"}); len(q) != 0 {
		t.Errorf("search by another pipeline: %+v", q)
	}

	pc, has := PipelineStats(failing)
	if !has || pc.ByClass[5] != 3 || pc.Stages[0].Requests != 3 || pc.Stages[1].Responses != 3 || pc.Terminal.Requests != 3 {
		t.Errorf("counters = %+v", pc)
	}
}

func TestRecentClientErrorsSlowAndEdge(t *testing.T) {
	tel, err := New(&engine.TelemetryConfig{RecentTraces: &engine.RecentTracesConfig{Size: 10, Slow: engine.Duration(time.Nanosecond), ClientErrors: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	refuse := dashGateway(tel, 429, 200)
	for range 3 {
		serveOne(tel, refuse, "/limited")
	}
	deny := dashGateway(tel, 401, 200)
	serveOne(tel, deny, "/private?api_key=hunter2")
	if got := tel.Recent().List(TraceQuery{Reason: "error"}); len(got) != 4 {
		t.Errorf("with client_errors, %d 4xx kept, want 4", len(got))
	}
	if got := tel.Recent().List(TraceQuery{Reason: "slow"}); len(got) != 4 {
		t.Errorf("with slow = 1ns, %d kept as slow, want 4", len(got))
	}
	d, _ := tel.Recent().Get(tel.Recent().List(TraceQuery{Status: 401})[0].ID)
	for _, s := range d.Spans {
		if s.Name == "second" && s.Phase == "request" && (s.Verdict != "respond" || s.Status != 401) {
			t.Errorf("the answering phase = %+v", s)
		}
	}
	e := tel.Edge(10)
	if len(e.TopRefused) != 1 || e.TopRefused[0].Refused != 3 || e.TopRefused[0].Client != "192.0.2.7" || e.TopRefused[0].Stage != "second" {
		t.Errorf("top refused = %+v", e.TopRefused)
	}
	if len(e.RecentAuth) != 1 || e.RecentAuth[0].Status != 401 || e.RecentAuth[0].Path != "/private" ||
		e.RecentAuth[0].Challenge != `Bearer error="invalid_token"` || e.RecentAuth[0].Stage != "second" {
		t.Errorf("recent auth = %+v", e.RecentAuth)
	}
}

// TestDashboardAllocatesNothing: the observer's end of a request not kept (tracing off, a fast
// 200) adds to the counters without allocating.
func TestDashboardAllocatesNothing(t *testing.T) {
	tel, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := dashGateway(tel, 0, 200)
	var fc fasthttp.RequestCtx
	fc.Request.SetRequestURI("/x")
	o := tel.Observer()
	allocs := testing.AllocsPerRun(200, func() {
		c := engine.AcquireCtx(&fc)
		c.Start = time.Now()
		o.StartRequest(c, p)
		p.Serve(c)
		o.EndRequest(c)
		engine.ReleaseCtx(c)
	})
	if allocs != 0 {
		t.Errorf("a request allocates %.1f times", allocs)
	}
}

// TestRecentSpacesSampledRequests: requests kept only for being sampled go into the ring at most
// one a millisecond (sampledEvery); a sampled error is kept whatever the rate.
func TestRecentSpacesSampledRequests(t *testing.T) {
	r := newRecent(&engine.RecentTracesConfig{Size: 10, Slow: engine.Duration(time.Hour)})
	t0 := time.Unix(1_700_000_000, 0)
	for i, c := range []struct {
		at     time.Duration
		status int
		want   uint8
	}{
		{0, 200, ReasonSampled},
		{sampledEvery / 2, 200, 0},
		{sampledEvery / 2, 503, ReasonSampled | ReasonError},
		{sampledEvery, 200, ReasonSampled},
		{sampledEvery + 1, 200, 0},
		{3 * sampledEvery, 200, ReasonSampled},
	} {
		if got := r.keep(c.status, true, t0.Add(c.at), time.Millisecond); got != c.want {
			t.Errorf("request %d (+%v, %d): reasons %b, want %b", i, c.at, c.status, got, c.want)
		}
	}
	if got := r.keep(200, false, t0.Add(time.Hour), time.Millisecond); got != 0 {
		t.Errorf("an unsampled fast 200: reasons %b, want none", got)
	}
}

// TestRecentRingGrowsToItsSize: a ring starts empty and grows as requests are kept; at its full
// size (not a power of two, past several doublings) it keeps exactly the newest size requests,
// and once full, keeping more allocates nothing.
func TestRecentRingGrowsToItsSize(t *testing.T) {
	const size = 37
	tel, err := New(&engine.TelemetryConfig{RecentTraces: &engine.RecentTracesConfig{Size: size, Slow: engine.Duration(time.Hour)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tel.Recent().ring {
		if n := cap(tel.Recent().ring[i].slots); n != 0 {
			t.Fatalf("ring %d starts with %d slots, want none", i, n)
		}
	}
	failing := dashGateway(tel, 0, 503)
	for i := range size + 5 {
		serveOne(tel, failing, "/e/"+strconv.Itoa(i))
		if n := cap(tel.Recent().ring[kindError].slots); n > size {
			t.Fatalf("after %d kept requests the ring has %d slots, over its size %d", i+1, n, size)
		}
	}
	got := tel.Recent().List(TraceQuery{Reason: "error"})
	if len(got) != size || got[0].Path != "/e/"+strconv.Itoa(size+4) || got[size-1].Path != "/e/5" {
		t.Fatalf("kept %d requests, newest %q, oldest %q; want %d from /e/%d back to /e/5", len(got), got[0].Path, got[len(got)-1].Path, size, size+4)
	}
	if n := cap(tel.Recent().ring[kindSampled].slots); n != 0 {
		t.Errorf("the sampled ring, with nothing sampled, has %d slots", n)
	}
	if raceEnabled {
		return // allocation counts are meaningless under the race detector
	}
	var fc fasthttp.RequestCtx
	fc.Request.SetRequestURI("/e/again")
	o := tel.Observer()
	allocs := testing.AllocsPerRun(100, func() {
		c := engine.AcquireCtx(&fc)
		c.Start = time.Now()
		o.StartRequest(c, failing)
		failing.Serve(c)
		o.EndRequest(c)
		engine.ReleaseCtx(c)
	})
	if allocs != 0 {
		t.Errorf("a request kept in a full ring allocates %.1f times", allocs)
	}
}
