package otellog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
	"github.com/valyala/fasthttp"
)

// serve builds src in dir, attaches telemetry as `sluice run` does and serves it; stop shuts
// the server down (closing the filters, which flushes their output) and telemetry.
func serve(t *testing.T, src, dir string) (url string, stop func()) {
	t.Helper()
	gw := gatewaytest.Build(t, src, dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		_ = tel.Shutdown(ctx)
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

func get(t *testing.T, url string, headers ...string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(url)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp := new(fasthttp.Response)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp
}

func gatewayConfig(rcv, up, output string) string {
	return fmt.Sprintf(`
telemetry {
  service_name = "otel-log-test"
  traces {
    exporter        = "otlp"
    endpoint        = %[1]q
    sample_ratio    = 1
    response_header = "X-Trace-Id"
  }
  logs {
    endpoint = %[1]q
  }
}
upstream "b" {
  target {
    address = %[2]q
  }
}
pipeline "open" {
  match {
    path_prefix = "/open/"
  }
  strip_prefix = "/open"
  filter "otel_log" {
    output          = %[3]q
    request_headers = ["user-agent", "authorization", "x-secret"]
    redact          = ["x-secret"]
    trace_headers   = true
  }
  balancer {
    upstream = upstream.b
  }
}
pipeline "secure" {
  match {
    path_prefix = "/secure/"
  }
  filter "otel_log" {
    output = %[3]q
  }
  filter "jwt" {
    hmac_secret = "0123456789abcdef0123456789abcdef"
  }
  balancer {
    upstream = upstream.b
  }
}
`, rcv, up, output)
}

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

// TestAccessLogThroughGateway: records written to a file carry the request's trace and server
// span ids, the upstream's target and timing, and see a later filter's local reply (jwt's 401).
func TestAccessLogThroughGateway(t *testing.T) {
	rcv, err := otlpreceiver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	var upstreamPath atomic.Value
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) {
		upstreamPath.Store(string(fc.Path()))
		fc.SetBodyString("hello")
	})
	dir := t.TempDir()
	url, stop := serve(t, gatewayConfig(rcv.Endpoint, up, "access.log"), dir)

	get(t, url+"/open/items?key=hidden", "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01",
		"User-Agent", "e2e", "Authorization", "Bearer TOKEN", "X-Secret", "s3cr3t")
	denied := get(t, url+"/secure/x")
	if denied.StatusCode() != 401 {
		t.Fatalf("jwt answered %d, want 401", denied.StatusCode())
	}
	stop() // closes the filters: both records are on disk

	raw, err := os.ReadFile(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"TOKEN", "s3cr3t", "hidden"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("access log holds %q:\n%s", secret, raw)
		}
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d records, want 2:\n%s", len(lines), raw)
	}
	var open, secure map[string]any
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if rec["pipeline"] == "open" {
			open = rec
		} else {
			secure = rec
		}
	}
	spans := rcv.Spans()
	var server otlpreceiver.Span
	for _, s := range otlpreceiver.Trace(spans, clientTrace) {
		if s.Kind == "Server" {
			server = s
		}
	}
	if open["trace_id"] != clientTrace || open["span_id"] != server.SpanID || server.SpanID == "" {
		t.Errorf("open record trace %v span %v, want %s and the server span %q", open["trace_id"], open["span_id"], clientTrace, server.SpanID)
	}
	if open["status"] != float64(200) || open["bytes"] != float64(5) || open["upstream"] != up || open["attempts"] != float64(1) || open["path"] != "/open/items" {
		t.Errorf("open record: %v", open)
	}
	// The upstream got the path without strip_prefix; the record keeps the client's. The
	// response came from the upstream; the client's traceparent is logged as it arrived,
	// although the upstream got the gateway's.
	if upstreamPath.Load() != "/items" {
		t.Errorf("upstream saw %v, want /items", upstreamPath.Load())
	}
	if open["source"] != "upstream" || open["flags"] != "-" || open["traceparent"] != "00-"+clientTrace+"-"+clientSpan+"-01" {
		t.Errorf("open record source %v flags %v traceparent %v", open["source"], open["flags"], open["traceparent"])
	}
	if secure["source"] != "gateway" || secure["flags"] != "UAEX" {
		t.Errorf("denied record source %v flags %v, want gateway, UAEX", secure["source"], secure["flags"])
	}
	if open["upstream_ms"].(float64) <= 0 || open["upstream_ms"].(float64) > open["duration_ms"].(float64) {
		t.Errorf("upstream_ms %v, duration_ms %v", open["upstream_ms"], open["duration_ms"])
	}
	hdrs := open["request_headers"].(map[string]any)
	if hdrs["authorization"] != "[REDACTED]" || hdrs["x-secret"] != "[REDACTED]" || hdrs["user-agent"] != "e2e" {
		t.Errorf("headers %v", hdrs)
	}
	if secure == nil || secure["status"] != float64(401) || secure["upstream"] != "" || secure["error"] == nil {
		t.Errorf("the local reply's record: %v", secure)
	}
	if tid := string(denied.Header.Peek("X-Trace-Id")); secure["trace_id"] != tid {
		t.Errorf("denied record trace %v, response trace %s", secure["trace_id"], tid)
	}
}

// TestOTLPLogs: output = "otlp" exports each record to telemetry.logs.endpoint, correlated with
// the trace, redacted, and flushed when the filter is closed.
func TestOTLPLogs(t *testing.T) {
	rcv, err := otlpreceiver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("hello") })
	url, stop := serve(t, gatewayConfig(rcv.Endpoint, up, "otlp"), t.TempDir())
	get(t, url+"/open/items", "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01", "Authorization", "Bearer TOKEN", "User-Agent", "e2e")
	get(t, url+"/secure/x")
	stop()

	logs := rcv.Logs()
	if len(logs) != 2 {
		t.Fatalf("%d log records, want 2: %+v", len(logs), logs)
	}
	var open, secure otlpreceiver.LogRecord
	for _, l := range logs {
		if l.Attributes["http.route"] == "open" {
			open = l
		} else {
			secure = l
		}
	}
	if open.TraceID != clientTrace || open.SpanID == "" || open.SpanID == clientSpan || open.Service != "otel-log-test" {
		t.Errorf("open record ids %s/%s from %q", open.TraceID, open.SpanID, open.Service)
	}
	if open.Body != "GET /open/items 200" || open.Severity != "INFO" {
		t.Errorf("open record body %v severity %s", open.Body, open.Severity)
	}
	want := map[string]any{
		"http.request.method":               "GET",
		"url.path":                          "/open/items",
		"http.response.status_code":         int64(200),
		"http.response.body.size":           int64(5),
		"sluice.upstream.target":            up,
		"client.address":                    "127.0.0.1",
		"http.request.header.user-agent":    []any{"e2e"},
		"http.request.header.authorization": []any{"[REDACTED]"},
	}
	for k, v := range want {
		if got := fmt.Sprint(open.Attributes[k]); got != fmt.Sprint(v) {
			t.Errorf("attribute %s = %v, want %v", k, got, v)
		}
	}
	if secure.Severity != "WARN" || secure.Attributes["http.response.status_code"] != int64(401) {
		t.Errorf("denied record: %s %v", secure.Severity, secure.Attributes)
	}
}
