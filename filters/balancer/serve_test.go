package balancer

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// serveUpstream runs h on a loopback port for the test.
func serveUpstream(t testing.TB, h fasthttp.RequestHandler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func okHandler(c *fasthttp.RequestCtx) {
	c.Response.Header.Set("X-Up", "1")
	c.SetBodyString("hello")
}

func buildFor(t testing.TB, name string, cfg *Config, env *engine.BuildEnv) *Upstream {
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	u, err := Build(name, cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.(*Upstream).Close() })
	return u.(*Upstream)
}

func TestServeSetsCtx(t *testing.T) {
	addr := serveUpstream(t, okHandler)
	u := buildFor(t, t.Name(), validConfig(addr), &engine.BuildEnv{})
	c := enginetest.NewCtx(t, "GET", "/x")
	enginetest.Serve(c, u.Serve)
	if c.Response.StatusCode() != 200 || string(c.Response.Body()) != "hello" {
		t.Fatalf("got %d %q", c.Response.StatusCode(), c.Response.Body())
	}
	if c.Target != addr || c.Attempts != 1 || c.UpstreamTime <= 0 {
		t.Errorf("Target %q Attempts %d UpstreamTime %v", c.Target, c.Attempts, c.UpstreamTime)
	}
}

// TestServeAllocations proxies a GET to a real upstream over a warm keep-alive connection and
// counts the allocations of the whole Serve: selection, request building, the exchange and the
// response copy.
func TestServeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	addr := serveUpstream(t, okHandler)
	u := buildFor(t, t.Name(), validConfig(addr), &engine.BuildEnv{})
	c := enginetest.NewCtx(t, "GET", "/x?y=1", "X-Client", "a")
	p := engine.NewPipeline("test", engine.MatchConfig{}, "", nil, u)
	c.Pipeline = p
	// The balancer forwards the request in place: each run starts from the client's request,
	// as a server's next request would.
	var client fasthttp.Request
	c.Request.CopyTo(&client)
	run := func() {
		client.CopyTo(c.Request)
		p.Serve(c)
		if c.Response.StatusCode() != 200 {
			t.Fatalf("status %d", c.Response.StatusCode())
		}
		c.Target, c.Attempts, c.UpstreamTime = "", 0, 0
	}
	for i := 0; i < 10; i++ {
		run()
	}
	if allocs := testing.AllocsPerRun(500, run); allocs != 0 {
		t.Errorf("Serve allocates %v per request, want 0", allocs)
	}
}

func BenchmarkServe(b *testing.B) {
	addr := serveUpstream(b, okHandler)
	u := buildFor(b, b.Name(), validConfig(addr), &engine.BuildEnv{})
	c := enginetest.NewCtx(b, "GET", "/x?y=1", "X-Client", "a")
	p := engine.NewPipeline("test", engine.MatchConfig{}, "", nil, u)
	var client fasthttp.Request
	c.Request.CopyTo(&client)
	b.ReportAllocs()
	for b.Loop() {
		client.CopyTo(c.Request)
		p.Serve(c)
	}
}

// TestLargeResponseIsStreamed checks that a response above max_response_bytes is handed to the
// client as a stream, and a smaller one is held.
func TestLargeResponseIsStreamed(t *testing.T) {
	body := strings.Repeat("x", 64<<10)
	addr := serveUpstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/chunked" {
			c.SetBodyStream(strings.NewReader(body), -1)
			return
		}
		c.SetBodyString(body)
	})
	env := &engine.BuildEnv{Server: &engine.ServerConfig{MaxResponseBytes: 16 << 10}}
	u := buildFor(t, t.Name(), validConfig(addr), env)
	for _, path := range []string{"/fixed", "/chunked"} {
		c := enginetest.NewCtx(t, "GET", path)
		enginetest.Serve(c, u.Serve)
		if !c.Response.IsBodyStream() {
			t.Errorf("%s: a 64KiB response over a 16KiB max_response_bytes is held, want streamed", path)
		}
		if got := string(c.Response.Body()); got != body {
			t.Errorf("%s: streamed body has %d bytes, want %d", path, len(got), len(body))
		}
	}
	env.Server.MaxResponseBytes = 1 << 20
	u2 := buildFor(t, t.Name()+"2", validConfig(addr), env)
	for _, path := range []string{"/fixed", "/chunked"} {
		c := enginetest.NewCtx(t, "GET", path)
		enginetest.Serve(c, u2.Serve)
		if c.Response.IsBodyStream() || string(c.Response.Body()) != body {
			t.Errorf("%s: a 64KiB response under max_response_bytes should be held whole", path)
		}
	}
}

// TestStreamedResponseLinesBounded: every response over max_response_bytes streams, but the
// upstream logs at most StreamLogPerSecond lines a second about it.
func TestStreamedResponseLinesBounded(t *testing.T) {
	body := strings.Repeat("x", 64<<10)
	addr := serveUpstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString(body) })
	var logged enginetest.LogBuffer
	env := &engine.BuildEnv{Server: &engine.ServerConfig{MaxResponseBytes: 16 << 10},
		Logger: slog.New(slog.NewTextHandler(&logged, nil))}
	u := buildFor(t, t.Name(), validConfig(addr), env)
	const n = 3 * StreamLogPerSecond
	start := time.Now()
	for range n {
		c := enginetest.NewCtx(t, "GET", "/")
		enginetest.Serve(c, u.Serve)
		if !c.Response.IsBodyStream() {
			t.Fatal("a 64KiB response over a 16KiB max_response_bytes is held, want streamed")
		}
	}
	lines := strings.Count(logged.String(), "streaming a response larger than max_response_bytes")
	// The n requests may straddle a window's end on a slow machine: at most two windows' lines.
	windows := 1 + int(time.Since(start)/time.Second)
	if lines < StreamLogPerSecond || lines > windows*StreamLogPerSecond {
		t.Fatalf("%d lines for %d streamed responses in %d window(s), want %d a window", lines, n, windows, StreamLogPerSecond)
	}
	// The "suppressed" count of the next window's first line: TestLogLimit (engine).
}

// recordingObserver is an engine.AttemptObserver that injects a traceparent per attempt.
type recordingObserver struct {
	mu       sync.Mutex
	targets  []string
	statuses []int
}

func (o *recordingObserver) StartRequest(*engine.Ctx, *engine.Pipeline) {}
func (o *recordingObserver) EndRequest(*engine.Ctx)                     {}
func (o *recordingObserver) StartStage(*engine.Ctx, *engine.Stage, engine.Phase) any {
	return nil
}
func (o *recordingObserver) EndStage(*engine.Ctx, *engine.Stage, engine.Phase, any, engine.Verdict) {
}
func (o *recordingObserver) StartAttempt(c *engine.Ctx, target string, req *fasthttp.Request, lines []byte) (any, []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.targets = append(o.targets, target)
	lines = append(lines, "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"...)
	return len(o.targets), lines
}
func (o *recordingObserver) EndAttempt(c *engine.Ctx, tok any, status int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.statuses = append(o.statuses, status)
}

func TestAttemptObserver(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	failing := serveUpstream(t, func(c *fasthttp.RequestCtx) { c.SetStatusCode(503) })
	ok := serveUpstream(t, func(c *fasthttp.RequestCtx) {
		mu.Lock()
		// PeekAll reuses one buffer: format each result before the next call.
		tp := fmt.Sprintf("%q", c.Request.Header.PeekAll("Traceparent"))
		seen = append(seen, fmt.Sprintf("%s %q", tp, c.Request.Header.PeekAll("Tracestate")))
		mu.Unlock()
		c.SetBodyString("ok")
	})
	cfg := validConfig(failing, ok)
	n := 1
	cfg.Retry = &RetryConfig{Attempts: &n, On: []string{"503"}}
	u := buildFor(t, t.Name(), cfg, &engine.BuildEnv{})
	obs := &recordingObserver{}
	g := &engine.Gateway{Pipelines: []*engine.Pipeline{engine.NewPipeline("p", engine.MatchConfig{}, "", nil, u)}}
	g.SetObserver(obs)
	c := enginetest.NewCtx(t, "GET", "/x")
	// The client's own trace context, twice over: the observer's lines replace all of it.
	c.Request.Header.Add("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	c.Request.Header.Add("traceparent", "00-33333333333333333333333333333333-4444444444444444-01")
	c.Request.Header.Add("Tracestate", "a=1")
	g.Pipelines[0].Serve(c)
	if c.Response.StatusCode() != 200 || c.Attempts != 2 || c.Target != ok {
		t.Fatalf("status %d after %d attempts on %s, want 200 after 2 on %s", c.Response.StatusCode(), c.Attempts, c.Target, ok)
	}
	if len(obs.targets) != 2 || obs.targets[0] != failing || obs.targets[1] != ok {
		t.Errorf("StartAttempt targets %v, want [%s %s]", obs.targets, failing, ok)
	}
	if len(obs.statuses) != 2 || obs.statuses[0] != 503 || obs.statuses[1] != 200 {
		t.Errorf("EndAttempt statuses %v, want [503 200]", obs.statuses)
	}
	want := `["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"] []`
	if len(seen) != 1 || seen[0] != want {
		t.Errorf("upstream saw traceparent and tracestate %v, want %s", seen, want)
	}

	// An observer that propagates nothing leaves the client's trace context alone.
	seen = nil
	g.SetObserver(&silentObserver{})
	c = enginetest.NewCtx(t, "GET", "/x")
	c.Request.Header.Add("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	c.Request.Header.Add("Tracestate", "a=1")
	g.Pipelines[0].Serve(c)
	want = `["00-11111111111111111111111111111111-2222222222222222-01"] ["a=1"]`
	if len(seen) != 1 || seen[0] != want {
		t.Errorf("without trace lines, upstream saw %v, want %s", seen, want)
	}
}

// silentObserver observes attempts and propagates no trace context.
type silentObserver struct{ recordingObserver }

func (*silentObserver) StartAttempt(c *engine.Ctx, target string, req *fasthttp.Request, lines []byte) (any, []byte) {
	return nil, lines
}
func (*silentObserver) EndAttempt(*engine.Ctx, any, int, error) {}

func TestMetricsRecorded(t *testing.T) {
	failing := serveUpstream(t, func(c *fasthttp.RequestCtx) { c.SetStatusCode(502) })
	ok := serveUpstream(t, okHandler)
	cfg := validConfig(failing, ok)
	n := 1
	cfg.Retry = &RetryConfig{Attempts: &n, On: []string{"502"}}
	pct := 100
	cfg.OutlierDetection = &OutlierDetectionConfig{ConsecutiveFailures: 1, BaseEjectionTime: engine.Duration(time.Hour), MaxEjectionPercent: &pct}
	name := t.Name()
	u := buildFor(t, name, cfg, &engine.BuildEnv{})
	// The metrics are process-wide and the targets' ports change between runs, but the retries
	// counter is labelled by the upstream alone: count from its value now (go test -count=N).
	retriesBefore := value(mRetries.WithLabelValues(name, "5xx"))
	for i := 0; i < 4; i++ {
		c := enginetest.NewCtx(t, "GET", "/x")
		enginetest.Serve(c, u.Serve)
		if c.Response.StatusCode() != 200 {
			t.Fatalf("request %d: %d", i, c.Response.StatusCode())
		}
		if !c.FromUpstream || c.Flags != 0 {
			t.Errorf("request %d: FromUpstream %v, flags %s; want true, none", i, c.FromUpstream, c.Flags.AppendText(nil))
		}
	}
	checks := []struct {
		what string
		got  float64
		want float64
	}{
		{"requests to the failing target", value(mRequests.WithLabelValues(name, failing)), 1},
		{"failures of the failing target", value(mFailures.WithLabelValues(name, failing, "5xx")), 1},
		{"ejections of the failing target", value(mEjections.WithLabelValues(name, failing, "consecutive_failures")), 1},
		{"requests to the good target", value(mRequests.WithLabelValues(name, ok)), 4},
		{"retries", value(mRetries.WithLabelValues(name, "5xx")) - retriesBefore, 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if n := mLatency.WithLabelValues(name, ok).Count(); n != 4 {
		t.Errorf("latency histogram of the good target: %d samples, want 4", n)
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestServeRestoresClientRequest checks what forwarding in place leaves for the response phases
// and the client's connection: the upstream gets the path without strip_prefix and a keep-alive
// request, while c.Request keeps the client's request-target and Connection: close.
func TestServeRestoresClientRequest(t *testing.T) {
	var got string
	var gotClose bool
	addr := serveUpstream(t, func(c *fasthttp.RequestCtx) {
		got = string(c.Request.Header.RequestURI())
		gotClose = c.Request.Header.ConnectionClose()
		c.SetBodyString("ok")
	})
	u := buildFor(t, t.Name(), validConfig(addr), &engine.BuildEnv{})
	c := enginetest.NewCtx(t, "GET", "/v1/items?id=7")
	c.Request.Header.SetConnectionClose()
	c.Pipeline = engine.NewPipeline("test", engine.MatchConfig{}, "/v1", nil, u)
	c.Pipeline.Serve(c)
	if c.Response.StatusCode() != 200 {
		t.Fatalf("status %d", c.Response.StatusCode())
	}
	if got != "/items?id=7" || gotClose {
		t.Errorf("upstream got %q (Connection: close %v), want /items?id=7 keep-alive", got, gotClose)
	}
	if uri := string(c.Request.Header.RequestURI()); uri != "/v1/items?id=7" || !c.Request.Header.ConnectionClose() {
		t.Errorf("after Serve the client request is %q (close %v), want /v1/items?id=7 with close", uri, c.Request.Header.ConnectionClose())
	}
}
