package telemetry_test

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
)

// TestTraceContextThroughGateway runs the W3C cases through a real gateway and checks what the
// upstream received and what the client got back.
func TestTraceContextThroughGateway(t *testing.T) {
	rcv := startReceiver(t)
	rec := &recorder{}
	up := gatewaytest.Upstream(t, rec.handler(200))
	gw := startWithTelemetry(t, config(rcv.Endpoint, 1, up))

	const tid = "12345678901234567890123456789012"
	const pid = "1234567890123456"
	tests := []struct {
		name      string
		headers   []string
		continued bool   // the upstream's trace id is the client's
		sampled   string // the upstream's flags
		state     string // the upstream's tracestate
	}{
		{"no traceparent", nil, false, "03", ""},
		{"valid sampled", []string{"traceparent", "00-" + tid + "-" + pid + "-01"}, true, "01", ""},
		{"valid unsampled is honoured", []string{"traceparent", "00-" + tid + "-" + pid + "-00"}, true, "00", ""},
		{"header name casing", []string{"TraceParent", "00-" + tid + "-" + pid + "-01"}, true, "01", ""},
		{"OWS", []string{"traceparent", " 00-" + tid + "-" + pid + "-01\t"}, true, "01", ""},
		{"future version", []string{"traceparent", "cc-" + tid + "-" + pid + "-01-what-the-future-will-be-like"}, true, "01", ""},
		{"upper case restarts", []string{"traceparent", "00-" + strings.ToUpper("abcdef78901234567890123456789012") + "-" + pid + "-01", "tracestate", "foo=1"}, false, "03", ""},
		{"version ff restarts", []string{"traceparent", "ff-" + tid + "-" + pid + "-01"}, false, "03", ""},
		{"zero trace id restarts", []string{"traceparent", "00-00000000000000000000000000000000-" + pid + "-01"}, false, "03", ""},
		{"duplicated traceparent restarts", []string{"traceparent", "00-" + tid + "-" + pid + "-01", "traceparent", "00-12345678901234567890123456789011-" + pid + "-01"}, false, "03", ""},
		{"tracestate combined", []string{"traceparent", "00-" + tid + "-" + pid + "-01", "tracestate", "foo=1,bar=2", "tracestate", "rojo=1", "tracestate", ""}, true, "01", "foo=1,bar=2,rojo=1"},
		{"duplicated tracestate key: the first stays", []string{"traceparent", "00-" + tid + "-" + pid + "-01", "tracestate", "foo=1", "tracestate", "foo=2"}, true, "01", "foo=1"},
		{"invalid tracestate dropped", []string{"traceparent", "00-" + tid + "-" + pid + "-01", "tracestate", "FOO=1"}, true, "01", ""},
		{"invalid tracestate member dropped alone", []string{"traceparent", "00-" + tid + "-" + pid + "-01", "tracestate", "FOO=1,foo@bar=2"}, true, "01", "foo@bar=2"},
		// Trace Context Level 2: the random flag goes on unchanged, unknown flags are zeroed.
		{"random flag kept", []string{"traceparent", "00-" + tid + "-" + pid + "-03"}, true, "03", ""},
		{"random flag kept unsampled", []string{"traceparent", "00-" + tid + "-" + pid + "-02"}, true, "02", ""},
		{"unknown flags zeroed", []string{"traceparent", "00-" + tid + "-" + pid + "-ff"}, true, "03", ""},
		{"unknown flag zeroed", []string{"traceparent", "00-" + tid + "-" + pid + "-09"}, true, "01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, gw.URL+"/v1/tc", tt.headers...)
			tp, ts := rec.last()
			if len(tp) != 55 || tp[:3] != "00-" {
				t.Fatalf("upstream traceparent %q is not a version-00 traceparent", tp)
			}
			gotTrace, gotParent, gotFlags := tp[3:35], tp[36:52], tp[53:]
			if (gotTrace == tid) != tt.continued {
				t.Errorf("upstream trace id %s, continued = %v, want %v", gotTrace, gotTrace == tid, tt.continued)
			}
			if gotParent == pid {
				t.Errorf("upstream parent id is the client's span, not the gateway's")
			}
			if gotFlags != tt.sampled {
				t.Errorf("upstream flags %s, want %s", gotFlags, tt.sampled)
			}
			if ts != tt.state {
				t.Errorf("upstream tracestate %q, want %q", ts, tt.state)
			}
			if h := string(resp.Header.Peek("X-Trace-Id")); h != gotTrace {
				t.Errorf("X-Trace-Id %q, want the upstream's trace id %q", h, gotTrace)
			}
		})
	}

	// An unsampled request exports nothing; a sampled one sent after it does.
	const quietTrace, loudTrace = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	do(t, gw.URL+"/v1/tc", "traceparent", "00-"+quietTrace+"-"+pid+"-00")
	do(t, gw.URL+"/v1/tc", "traceparent", "00-"+loudTrace+"-"+pid+"-01")
	gw.Tel.Flush(context.Background())
	spans, err := rcv.WaitSpans(5*time.Second, func(s []otlpreceiver.Span) bool {
		return len(byKind(otlpreceiver.Trace(s, loudTrace), "Server")) == 1
	})
	if err != nil {
		t.Fatalf("the sampled request's span never arrived: %v", err)
	}
	if n := len(otlpreceiver.Trace(spans, quietTrace)); n != 0 {
		t.Errorf("the unsampled request exported %d spans", n)
	}
}

// blackhole accepts connections and never answers: a collector that hangs.
func blackhole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestCollectorDown: with the collector hanging, every request is sampled and still answered
// promptly, the span queue stays bounded, and shutdown gives up at its deadline.
func TestCollectorDown(t *testing.T) {
	up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
	// A queue of 2048 spans, the batch being exported and the exports waiting on the collector.
	src := strings.Replace(config(blackhole(t), 1, up), "telemetry {", "telemetry {\n  queue_size = 2048", 1)
	gw := startWithTelemetry(t, src)

	do(t, gw.URL+"/v1/warm")
	before := heapInUse()
	const requests, workers = 6000, 8
	var slowest atomic.Int64
	var failed atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < requests/workers; i++ {
				t0 := time.Now()
				if do(t, gw.URL+"/v1/load").StatusCode() != 200 {
					failed.Add(1)
				}
				if d := int64(time.Since(t0)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	growth := int64(heapInUse()) - int64(before)
	t.Logf("%d requests in %v, slowest %v, heap growth %.1f MiB", requests, elapsed, time.Duration(slowest.Load()), float64(growth)/(1<<20))
	if failed.Load() > 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	if time.Duration(slowest.Load()) > 2*time.Second {
		t.Errorf("a request took %v: the exporter blocked the request path", time.Duration(slowest.Load()))
	}
	// 6000 requests make 24000 spans (27 MiB measured with an unbounded queue); the queue holds at most 2048 plus the
	// batches being exported.
	if growth > 16<<20 {
		t.Errorf("heap grew by %.1f MiB: the span queue is not bounded", float64(growth)/(1<<20))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_ = gw.Tel.Shutdown(ctx)
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("shutdown took %v with a 500ms deadline", d)
	}
}

// TestShutdownFlushes: spans still queued (the batch timeout has not passed) are exported by
// Shutdown before it returns.
func TestShutdownFlushes(t *testing.T) {
	rcv := startReceiver(t)
	up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
	gw := startWithTelemetry(t, config(rcv.Endpoint, 1, up))
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, string(do(t, gw.URL+"/v1/flush").Header.Peek("X-Trace-Id")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	for _, id := range ids {
		if got := byKind(otlpreceiver.Trace(spans, id), "Server"); len(got) != 1 {
			t.Errorf("trace %s: %d server spans exported by shutdown, want 1", id, len(got))
		}
	}
}

func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetricsFlow: request counters by status class, the latency histogram, reloads and build
// info change as requests flow (tracing off: metrics are always on).
func TestMetricsFlow(t *testing.T) {
	up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
	gw := startWithTelemetry(t, `
upstream "b" {
  target {
    address = "`+up+`"
  }
}
pipeline "metrics_api" {
  match {
    path_prefix = "/m/"
  }
  balancer {
    upstream = upstream.b
  }
}
`)
	ok := map[string]string{"pipeline": "metrics_api", "method": "GET", "code_class": "2xx", "code": "200", "source": "upstream"}
	unrouted := map[string]string{"pipeline": "(none)", "method": "GET", "code_class": "4xx", "code": "404", "source": "gateway"}
	lat := map[string]string{"pipeline": "metrics_api", "method": "GET", "code_class": "2xx"}
	ok0, un0, lat0 := metricValue(t, "sluice_requests_total", ok), metricValue(t, "sluice_requests_total", unrouted), metricValue(t, "sluice_request_duration_seconds", lat)
	for i := 0; i < 5; i++ {
		do(t, gw.URL+"/m/x")
	}
	if s := do(t, gw.URL+"/nowhere").StatusCode(); s != 404 {
		t.Fatalf("unrouted status %d", s)
	}
	if d := metricValue(t, "sluice_requests_total", ok) - ok0; d != 5 {
		t.Errorf("2xx count grew by %v, want 5", d)
	}
	if d := metricValue(t, "sluice_requests_total", unrouted) - un0; d != 1 {
		t.Errorf("unrouted 4xx count grew by %v, want 1", d)
	}
	if d := metricValue(t, "sluice_request_duration_seconds", lat) - lat0; d != 5 {
		t.Errorf("latency histogram count grew by %v, want 5", d)
	}

	r0 := metricValue(t, "sluice_config_reloads_total", map[string]string{"result": "success"})
	f0 := metricValue(t, "sluice_config_reloads_total", map[string]string{"result": "failure"})
	telemetry.ConfigReloaded(true)
	telemetry.ConfigReloaded(false)
	if metricValue(t, "sluice_config_reloads_total", map[string]string{"result": "success"}) != r0+1 ||
		metricValue(t, "sluice_config_reloads_total", map[string]string{"result": "failure"}) != f0+1 {
		t.Errorf("reload counters did not move")
	}
	if metricValue(t, "sluice_config_last_reload_success_timestamp_seconds", nil) < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last reload timestamp not set")
	}
	telemetry.SetBuildInfo("1.2.3", "abc")
	if metricValue(t, "sluice_build_info", map[string]string{"version": "1.2.3", "revision": "abc"}) != 1 {
		t.Errorf("build info missing")
	}
}
