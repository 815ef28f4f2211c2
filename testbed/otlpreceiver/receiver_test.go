package otlpreceiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func traces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	tid := pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(id, parent byte, name string, kind ptrace.SpanKind, off, dur time.Duration) ptrace.Span {
		s := ss.AppendEmpty()
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{id})
		if parent != 0 {
			s.SetParentSpanID(pcommon.SpanID{parent})
		}
		s.SetName(name)
		s.SetKind(kind)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(off)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(off + dur)))
		return s
	}
	srv := add(1, 9, "GET api", ptrace.SpanKindServer, 0, 3*time.Millisecond)
	srv.Attributes().PutInt("http.response.status_code", 200)
	f := add(2, 1, "jwt request", ptrace.SpanKindInternal, 10*time.Microsecond, 40*time.Microsecond)
	f.Attributes().PutStr("sluice.verdict", "continue")
	ev := f.Events().AppendEmpty()
	ev.SetName("wasm.log")
	ev.Attributes().PutStr("log.message", "hi")
	c := add(3, 1, "GET", ptrace.SpanKindClient, 100*time.Microsecond, 2*time.Millisecond)
	c.Attributes().PutStr("server.address", "127.0.0.1")
	c.Attributes().PutInt("server.port", 9001)
	c.Status().SetCode(ptrace.StatusCodeError)
	add(4, 3, "GET /items", ptrace.SpanKindServer, 200*time.Microsecond, time.Millisecond)
	return td
}

func post(t *testing.T, url, ctype string, body []byte, gz bool) {
	t.Helper()
	if gz {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(body)
		w.Close()
		body = b.Bytes()
	}
	req, _ := http.NewRequestWithContext(context.Background(), "POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", url, resp.StatusCode)
	}
}

func TestReceiveAndPrint(t *testing.T) {
	r, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pb, _ := ptraceotlp.NewExportRequestFromTraces(traces()).MarshalProto()
	post(t, r.Endpoint+"/v1/traces", "application/x-protobuf", pb, true)
	js, _ := ptraceotlp.NewExportRequestFromTraces(traces()).MarshalJSON()
	post(t, r.Endpoint+"/v1/traces", "application/json", js, false)

	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.Body().SetStr("GET / 200")
	lpb, _ := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	post(t, r.Endpoint+"/v1/logs", "application/x-protobuf", lpb, false)

	spans, err := r.WaitSpans(2*time.Second, func(s []Span) bool { return len(s) == 8 })
	if err != nil {
		t.Fatalf("%v: %d spans", err, len(spans))
	}
	if l := r.Logs(); len(l) != 1 || l[0].Body != "GET / 200" {
		t.Errorf("logs %+v", l)
	}
	got := FormatTree(Trace(spans[:4], spans[0].TraceID))
	want := `trace 0102030405060708090a0b0c0d0e0f10
└─ GET api [svc server] 3.00ms status=200
   ├─ jwt request 40µs @+10µs verdict=continue
   │    • wasm.log log.message="hi"
   └─ GET [svc client] 2.00ms @+100µs → 127.0.0.1:9001 ERROR
      └─ GET /items [svc server] 1.00ms @+200µs
`
	if got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	if tr := r.FinishedTraces(0); len(tr) != 1 || len(tr[0]) != 8 {
		t.Errorf("finished traces: %d", len(tr))
	}
	if tr := r.FinishedTraces(0); len(tr) != 0 {
		t.Errorf("a trace was returned twice")
	}
}

func TestRejectsGarbage(t *testing.T) {
	r, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	resp, err := http.Post(r.Endpoint+"/v1/traces", "application/x-protobuf", strings.NewReader("\xff\xff\xff"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("garbage accepted with %d", resp.StatusCode)
	}
}

// postTrace exports one gateway trace: a server span (method, path, status) with a filter span,
// starting at start.
func postTrace(t *testing.T, r *Receiver, tid byte, path string, status int64, start time.Time) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "sluice")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	id := pcommon.TraceID{tid, 1}
	srv := ss.AppendEmpty()
	srv.SetTraceID(id)
	srv.SetSpanID(pcommon.SpanID{tid, 1})
	srv.SetName("GET /api/*")
	srv.SetKind(ptrace.SpanKindServer)
	srv.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	srv.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(2 * time.Millisecond)))
	srv.Attributes().PutStr("http.request.method", "GET")
	srv.Attributes().PutStr("url.path", path)
	srv.Attributes().PutInt("http.response.status_code", status)
	f := ss.AppendEmpty()
	f.SetTraceID(id)
	f.SetSpanID(pcommon.SpanID{tid, 2})
	f.SetParentSpanID(pcommon.SpanID{tid, 1})
	f.SetName("jwt request")
	f.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(50 * time.Microsecond)))
	f.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(90 * time.Microsecond)))
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	post(t, r.Endpoint+"/v1/traces", "application/x-protobuf", pb, false)
}

// The viewer prints a trace once its server span arrived, in the order the requests started,
// headed by method, path and status, with each span's offset; it filters by status and trace id.
func TestViewerOrderAndFilter(t *testing.T) {
	r, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	// Exported out of order: the second request's batch first.
	postTrace(t, r, 2, "/api/second", 503, base.Add(time.Second))
	postTrace(t, r, 1, "/api/first", 200, base)
	// A trace without its server span yet is not complete.
	td := ptrace.NewTraces()
	s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(pcommon.TraceID{3, 1})
	s.SetSpanID(pcommon.SpanID{3, 2})
	s.SetParentSpanID(pcommon.SpanID{3, 1})
	s.SetName("jwt request")
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	post(t, r.Endpoint+"/v1/traces", "application/x-protobuf", pb, false)

	traces := r.CompletedTraces(0)
	if len(traces) != 2 {
		t.Fatalf("%d completed traces, want the 2 with a server span", len(traces))
	}
	first := FormatTrace(traces[0])
	if !strings.HasPrefix(first, "12:00:00.000 GET /api/first → 200  2.00ms  sluice\n") || !strings.Contains(first, "jwt request 40µs @+50µs") {
		t.Errorf("first trace printed as:\n%s", first)
	}
	if !strings.Contains(FormatTrace(traces[1]), "GET /api/second → 503") {
		t.Errorf("second trace printed as:\n%s", FormatTrace(traces[1]))
	}
	if again := r.CompletedTraces(0); len(again) != 0 {
		t.Errorf("%d traces returned twice", len(again))
	}

	for _, tc := range []struct {
		status, trace string
		want          []bool // matches traces[0] (200), traces[1] (503)
	}{
		{"", "", []bool{true, true}},
		{"5xx", "", []bool{false, true}},
		{"200", "", []bool{true, false}},
		{"404,2xx", "", []bool{true, false}},
		{"", "0201", []bool{false, true}},
		{"5xx", "0101", []bool{false, false}},
	} {
		f, err := ParseTraceFilter(tc.status, tc.trace)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range tc.want {
			if got := f.Match(traces[i]); got != want {
				t.Errorf("filter status=%q trace=%q on trace %d: %v, want %v", tc.status, tc.trace, i, got, want)
			}
		}
	}
	if _, err := ParseTraceFilter("6xx", ""); err == nil {
		t.Error("status 6xx accepted")
	}
}
