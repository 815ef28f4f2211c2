package telemetry

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func oneSpan() []sdktrace.ReadOnlySpan {
	return []sdktrace.ReadOnlySpan{tracetest.SpanStub{Name: "x"}.Snapshot()}
}

// TestDirectExportKeepsItsConnection: an http:// collector gets the exporter's own exchange: the
// configured headers, a body that decodes, and one connection for consecutive exports.
func TestDirectExportKeepsItsConnection(t *testing.T) {
	var conns, spans atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		tr := ptraceotlp.NewExportRequest()
		if req.URL.Path != "/v1/traces" || req.Header.Get("X-Tenant") != "a b" || req.Header.Get("Content-Type") != "application/x-protobuf" || tr.UnmarshalProto(body) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		spans.Add(int32(tr.Traces().SpanCount()))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	exp := newOTLPHTTPExporter(srv.URL+"/v1/traces", &engine.TelemetryConfig{Headers: map[string]string{"x-tenant": "a b"}})
	if exp.direct == nil {
		t.Fatal("an http:// collector without a proxy should get the direct exchange")
	}
	defer exp.Shutdown(context.Background())
	for range 3 {
		if err := exp.ExportSpans(context.Background(), oneSpan()); err != nil {
			t.Fatal(err)
		}
	}
	if spans.Load() != 3 || conns.Load() != 1 {
		t.Errorf("%d spans over %d connections, want 3 over 1", spans.Load(), conns.Load())
	}
}

// rawCollector answers every request on a connection with reply, then closes the connection
// when closeAfter; it counts requests.
func rawCollector(t *testing.T, reply string, closeAfter bool) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var reqs atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					reqs.Add(1)
					if _, err := io.WriteString(c, reply); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/v1/traces", &reqs
}

// TestDirectExportStaleConnection: a collector that closes a kept-alive connection without
// saying so (no Connection: close) costs no export: the request goes again on a new connection.
func TestDirectExportStaleConnection(t *testing.T) {
	url, reqs := rawCollector(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true)
	exp := newOTLPHTTPExporter(url, &engine.TelemetryConfig{})
	defer exp.Shutdown(context.Background())
	for i := range 3 {
		if err := exp.ExportSpans(context.Background(), oneSpan()); err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
		time.Sleep(10 * time.Millisecond) // let the collector's close arrive first
	}
	if reqs.Load() != 3 {
		t.Errorf("the collector got %d requests, want 3", reqs.Load())
	}
}

// TestDirectExportChunkedError: a chunked error answer is read as net/http reads it: its
// message is in the error, and a 400 is not retried.
func TestDirectExportChunkedError(t *testing.T) {
	url, reqs := rawCollector(t, "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nno way\r\n0\r\n\r\n", false)
	exp := newOTLPHTTPExporter(url, &engine.TelemetryConfig{ExportTimeout: engine.Duration(5 * time.Second)})
	defer exp.Shutdown(context.Background())
	err := exp.ExportSpans(context.Background(), oneSpan())
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request: no way") || reqs.Load() != 1 {
		t.Errorf("err %v after %d requests, want the 400 and its message after 1", err, reqs.Load())
	}
	// The connection stays usable: the chunked body was read to its end.
	if err := exp.ExportSpans(context.Background(), oneSpan()); err == nil || reqs.Load() != 2 {
		t.Errorf("second export: err %v after %d requests", err, reqs.Load())
	}
}

// TestDirectExportCancelled: an export to a collector that never answers ends when its context
// is cancelled (the batcher's shutdown), not at the export timeout.
func TestDirectExportCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	exp := newOTLPHTTPExporter("http://"+ln.Addr().String(), &engine.TelemetryConfig{ExportTimeout: engine.Duration(time.Minute)})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if err := exp.ExportSpans(ctx, oneSpan()); err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("err %v after %v, want an error soon after the cancel", err, time.Since(start))
	}
}

// TestDirectExchangeOnlyWherePlain: https, credentials in the URL and headers the exchange sets
// itself keep net/http's client.
func TestDirectExchangeOnlyWherePlain(t *testing.T) {
	for _, c := range []struct {
		url     string
		headers map[string]string
	}{
		{"https://collector:4318/v1/traces", nil},
		{"http://u:p@collector:4318/v1/traces", nil},
		{"http://collector:4318/v1/traces", map[string]string{"Host": "other"}},
		{"http://collector:4318/v1/traces", map[string]string{"X-Bad": "a\r\nb"}},
	} {
		if d := newDirectHTTP(c.url, c.headers, 4); d != nil {
			t.Errorf("%s with %v: direct exchange, want net/http's client", c.url, c.headers)
		}
	}
	d := newDirectHTTP("http://collector/v1/traces?x=1", map[string]string{"b": "2", "a": "1"}, 4)
	if d == nil || d.addr != "collector:80" || string(d.head) != "POST /v1/traces?x=1 HTTP/1.1\r\nHost: collector\r\nContent-Type: application/x-protobuf\r\nUser-Agent: "+UserAgent+"\r\nA: 1\r\nB: 2\r\nContent-Length: " {
		t.Errorf("direct exchange %+v", d)
	}
}

// TestExporterUserAgent: both of the exporter's ways to a collector name it in User-Agent, as
// the OTLP specification asks, unless the configured headers set one (in any case).
func TestExporterUserAgent(t *testing.T) {
	agents := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		agents <- req.Header.Get("User-Agent")
	}))
	defer srv.Close()
	for _, c := range []struct {
		name    string
		direct  bool
		headers map[string]string
		want    string
	}{
		{"direct", true, nil, UserAgent},
		{"net/http", false, nil, UserAgent},
		{"direct, configured", true, map[string]string{"user-agent": "mine/1"}, "mine/1"},
		{"net/http, configured", false, map[string]string{"User-Agent": "mine/1"}, "mine/1"},
	} {
		exp := newOTLPHTTPExporter(srv.URL+"/v1/traces", &engine.TelemetryConfig{Headers: c.headers})
		if !c.direct {
			exp.direct = nil // net/http's client, as for an https:// collector
		} else if exp.direct == nil {
			t.Fatalf("%s: no direct exchange", c.name)
		}
		if err := exp.ExportSpans(context.Background(), oneSpan()); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := <-agents; got != c.want {
			t.Errorf("%s: User-Agent %q, want %q", c.name, got, c.want)
		}
		_ = exp.Shutdown(context.Background())
	}
	if !strings.HasPrefix(UserAgent, "Sluice-OTLP-Exporter-Go") {
		t.Errorf("UserAgent %q does not name the exporter", UserAgent)
	}
}
