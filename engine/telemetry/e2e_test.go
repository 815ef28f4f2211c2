package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
	"github.com/valyala/fasthttp"
)

// running is a gateway served with telemetry attached, as `sluice run` does it.
type running struct {
	URL string
	Tel *telemetry.Telemetry
	Srv *engine.Server
}

func startWithTelemetry(t testing.TB, src string) *running {
	t.Helper()
	return startWithTelemetryLog(t, src, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startWithTelemetryLog is startWithTelemetry writing the gateway's log to log.
func startWithTelemetryLog(t testing.TB, src string, log *slog.Logger) *running {
	t.Helper()
	gw := gatewaytest.Build(t, src, t.TempDir())
	tel, err := telemetry.New(&gw.Spec.Telemetry, log)
	if err != nil {
		t.Fatal(err)
	}
	tel.Attach(gw)
	srv, err := engine.NewServer(gw, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		_ = tel.Shutdown(ctx)
	})
	return &running{URL: "http://" + ln.Addr().String(), Tel: tel, Srv: srv}
}

func startReceiver(t testing.TB) *otlpreceiver.Receiver {
	t.Helper()
	r, err := otlpreceiver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// recorder is an upstream that remembers the trace headers of each request it received.
type recorder struct {
	mu          sync.Mutex
	traceparent []string
	tracestate  []string
}

func (r *recorder) handler(status int) fasthttp.RequestHandler {
	return func(fc *fasthttp.RequestCtx) {
		r.mu.Lock()
		r.traceparent = append(r.traceparent, string(fc.Request.Header.Peek("traceparent")))
		r.tracestate = append(r.tracestate, strings.Join(byteStrings(fc.Request.Header.PeekAll("tracestate")), "|"))
		r.mu.Unlock()
		fc.SetStatusCode(status)
		fc.SetBodyString("from upstream")
	}
}

func (r *recorder) last() (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.traceparent) == 0 {
		return "", ""
	}
	return r.traceparent[len(r.traceparent)-1], r.tracestate[len(r.tracestate)-1]
}

func byteStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func config(endpoint string, ratio float64, targets ...string) string {
	var tb strings.Builder
	for _, a := range targets {
		fmt.Fprintf(&tb, "  target {\n    address = %q\n  }\n", a)
	}
	return fmt.Sprintf(`
telemetry {
  service_name = "sluice-test"
  traces {
    exporter        = "otlp"
    endpoint        = %q
    sample_ratio    = %v
    response_header = "X-Trace-Id"
  }
}
upstream "backend" {
  policy = "round_robin"
%s
  retry {
    attempts       = 1
    on             = ["connect_failure", "503"]
    budget_percent = 100
  }
  timeouts {
    connect = "200ms"
    request = "5s"
  }
}
pipeline "api" {
  match {
    path_prefix = "/v1/"
  }
  filter "headers" {
    request_set = { "X-Gateway" = "sluice" }
  }
  balancer {
    upstream = upstream.backend
  }
}
`, endpoint, ratio, tb.String())
}

// do sends one request with headers (name/value pairs) and returns the response.
func do(t testing.TB, url string, headers ...string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(url)
	req.Header.Set("User-Agent", "telemetry-test/1.0")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp := new(fasthttp.Response)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("request: %v", err)
	}
	return resp
}

func byName(spans []otlpreceiver.Span, name string) []otlpreceiver.Span {
	var out []otlpreceiver.Span
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func serverSpan(spans []otlpreceiver.Span) (otlpreceiver.Span, bool) {
	for _, s := range spans {
		if s.Kind == "Server" {
			return s, true
		}
	}
	return otlpreceiver.Span{}, false
}

// TestSpanTreeAndPropagation follows one request with a client traceparent through a filter and
// the balancer: the exported tree (server → filter spans, server → client span), its attributes,
// and the traceparent the upstream received.
func TestSpanTreeAndPropagation(t *testing.T) {
	rcv := startReceiver(t)
	rec := &recorder{}
	up := gatewaytest.Upstream(t, rec.handler(200))
	gw := startWithTelemetry(t, config(rcv.Endpoint, 0, up))

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const clientSpan = "00f067aa0ba902b7"
	resp := do(t, gw.URL+"/v1/items?q=secret&access_token=abc123&x=1",
		"traceparent", "00-"+clientTrace+"-"+clientSpan+"-01",
		"tracestate", "congo=t61rcWkgMzE",
		"tracestate", "rojo=00f067aa0ba902b7")
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	if got := string(resp.Header.Peek("X-Trace-Id")); got != clientTrace {
		t.Errorf("X-Trace-Id = %q, want %q", got, clientTrace)
	}
	if err := gw.Tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := rcv.WaitSpans(5*time.Second, func(s []otlpreceiver.Span) bool { _, ok := serverSpan(s); return ok })
	if err != nil {
		t.Fatalf("no server span: %v (got %d spans)", err, len(spans))
	}
	spans = otlpreceiver.Trace(spans, clientTrace)
	t.Logf("\n%s", otlpreceiver.FormatTree(spans))

	srv, _ := serverSpan(spans)
	if srv.ParentSpanID != clientSpan {
		t.Errorf("server span parent = %q, want the client's %q", srv.ParentSpanID, clientSpan)
	}
	if srv.Name != "GET /v1/*" || srv.Service != "sluice-test" {
		t.Errorf("server span %q from %q, want \"GET /v1/*\" from sluice-test", srv.Name, srv.Service)
	}
	if srv.TraceState != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
		t.Errorf("server span tracestate %q", srv.TraceState)
	}
	wantAttrs := map[string]any{
		"http.request.method":       "GET",
		"url.path":                  "/v1/items",
		"url.scheme":                "http",
		"http.route":                "/v1/*",
		"sluice.pipeline":           "api",
		"url.query":                 "q=secret&access_token=[redacted]&x=1",
		"http.response.status_code": int64(200),
		"server.address":            "127.0.0.1",
		"network.peer.address":      "127.0.0.1",
		"client.address":            "127.0.0.1",
		"user_agent.original":       "telemetry-test/1.0",
		"network.protocol.version":  "1.1",
	}
	for k, want := range wantAttrs {
		if got := srv.Attributes[k]; got != want {
			t.Errorf("server span %s = %#v, want %#v", k, got, want)
		}
	}
	if _, ok := srv.Attributes["error.type"]; ok {
		t.Errorf("error.type set on a successful request")
	}

	for _, name := range []string{"headers request", "headers response"} {
		fs := byName(spans, name)
		if len(fs) != 1 {
			t.Fatalf("%d spans named %q, want 1", len(fs), name)
		}
		if fs[0].ParentSpanID != srv.SpanID {
			t.Errorf("%q is not a child of the server span", name)
		}
		if fs[0].Attributes["sluice.filter.kind"] != "headers" {
			t.Errorf("%q kind = %v", name, fs[0].Attributes["sluice.filter.kind"])
		}
	}
	if v := byName(spans, "headers request")[0].Attributes["sluice.verdict"]; v != "continue" {
		t.Errorf("verdict = %v, want continue", v)
	}

	clients := byName(spans, "GET")
	if len(clients) != 1 || clients[0].Kind != "Client" {
		t.Fatalf("want one client span, got %+v", clients)
	}
	cl := clients[0]
	if cl.ParentSpanID != srv.SpanID {
		t.Errorf("client span parent %q, want the server span %q", cl.ParentSpanID, srv.SpanID)
	}
	host, port, _ := net.SplitHostPort(up)
	if cl.Attributes["server.address"] != host || fmt.Sprint(cl.Attributes["server.port"]) != port {
		t.Errorf("client span server.address/port = %v:%v, want %s", cl.Attributes["server.address"], cl.Attributes["server.port"], up)
	}
	if cl.Attributes["network.peer.address"] != host || fmt.Sprint(cl.Attributes["network.peer.port"]) != port {
		t.Errorf("client span network.peer.address/port = %v:%v, want %s", cl.Attributes["network.peer.address"], cl.Attributes["network.peer.port"], up)
	}
	if cl.Attributes["http.response.status_code"] != int64(200) {
		t.Errorf("client span status = %v", cl.Attributes["http.response.status_code"])
	}
	if !strings.HasSuffix(fmt.Sprint(cl.Attributes["url.full"]), up+"/v1/items") {
		t.Errorf("url.full = %v (the query must not be recorded)", cl.Attributes["url.full"])
	}
	if cl.Start.Before(srv.Start) || cl.End.After(srv.End) {
		t.Errorf("client span [%v, %v] outside the server span [%v, %v]", cl.Start, cl.End, srv.Start, srv.End)
	}

	tp, ts := rec.last()
	if want := "00-" + clientTrace + "-" + cl.SpanID + "-01"; tp != want {
		t.Errorf("upstream traceparent = %q, want %q (parent = the client span)", tp, want)
	}
	if ts != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
		t.Errorf("upstream tracestate = %q, want the two incoming headers combined", ts)
	}
}

// TestRetriesAreSiblingClientSpans: a target answering 503 is retried on the other one; both
// attempts are client spans under the server span, the second with http.request.resend_count.
func TestRetriesAreSiblingClientSpans(t *testing.T) {
	rcv := startReceiver(t)
	bad, good := &recorder{}, &recorder{}
	upBad := gatewaytest.Upstream(t, bad.handler(503))
	upGood := gatewaytest.Upstream(t, good.handler(200))
	gw := startWithTelemetry(t, config(rcv.Endpoint, 1, upBad, upGood))

	var traceID string
	for i := 0; i < 4 && traceID == ""; i++ {
		resp := do(t, gw.URL+"/v1/retry")
		if resp.StatusCode() != 200 {
			t.Fatalf("status %d, want 200 after the retry", resp.StatusCode())
		}
		if bad.count() > 0 {
			traceID = string(resp.Header.Peek("X-Trace-Id"))
		}
	}
	if traceID == "" {
		t.Fatal("round robin never picked the failing target first")
	}
	gw.Tel.Flush(context.Background())
	spans, err := rcv.WaitSpans(5*time.Second, func(s []otlpreceiver.Span) bool {
		return len(byKind(otlpreceiver.Trace(s, traceID), "Server")) == 1
	})
	if err != nil {
		t.Fatal(err)
	}
	spans = otlpreceiver.Trace(spans, traceID)
	t.Logf("\n%s", otlpreceiver.FormatTree(spans))
	srv := byKind(spans, "Server")[0]
	clients := byKind(spans, "Client")
	if len(clients) != 2 {
		t.Fatalf("%d client spans, want 2", len(clients))
	}
	first, second := clients[0], clients[1]
	for _, c := range clients {
		if c.ParentSpanID != srv.SpanID {
			t.Errorf("client span %s is not a child of the server span", c.SpanID)
		}
	}
	if first.Attributes["http.response.status_code"] != int64(503) || first.StatusCode != "Error" || first.Attributes["error.type"] != "503" {
		t.Errorf("first attempt: status %v, span status %s, error.type %v", first.Attributes["http.response.status_code"], first.StatusCode, first.Attributes["error.type"])
	}
	if second.Attributes["http.response.status_code"] != int64(200) || second.Attributes["http.request.resend_count"] != int64(1) {
		t.Errorf("second attempt: status %v, resend_count %v", second.Attributes["http.response.status_code"], second.Attributes["http.request.resend_count"])
	}
	if first.Attributes["server.port"] == second.Attributes["server.port"] {
		t.Errorf("both attempts went to the same target")
	}
	// Each target saw a traceparent naming its own attempt's span.
	tpBad, _ := bad.last()
	tpGood, _ := good.last()
	if !strings.Contains(tpBad, first.SpanID) || !strings.Contains(tpGood, second.SpanID) {
		t.Errorf("upstream traceparents %q, %q do not name the attempts %s, %s", tpBad, tpGood, first.SpanID, second.SpanID)
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.traceparent)
}

func byKind(spans []otlpreceiver.Span, kind string) []otlpreceiver.Span {
	var out []otlpreceiver.Span
	for _, s := range spans {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}
