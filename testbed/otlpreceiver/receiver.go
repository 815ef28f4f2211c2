// Package otlpreceiver is a small OTLP/HTTP receiver: it accepts traces (/v1/traces) and logs
// (/v1/logs) as protobuf or JSON, optionally gzip-compressed, decodes them with the collector's
// pdata, and keeps them for tests to inspect. testbed/cmd/otlpreceiver prints each finished trace
// as a tree, so `make run` shows end-to-end traces without a tracing backend.
package otlpreceiver

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// maxBody bounds one export request.
const maxBody = 32 << 20

// Span is one received span, flattened.
type Span struct {
	Service      string // the resource's service.name
	TraceID      string // hex
	SpanID       string
	ParentSpanID string // "" for a root span
	TraceState   string
	Name         string
	Kind         string // Server, Client, Internal, …
	Start, End   time.Time
	Attributes   map[string]any
	StatusCode   string // Unset, Ok, Error
	StatusMsg    string
	Events       []Event
	received     time.Time
}

// Duration is End - Start.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Event is a span event (an exception, a Wasm guest's log line).
type Event struct {
	Name       string
	Time       time.Time
	Attributes map[string]any
}

// LogRecord is one received log record.
type LogRecord struct {
	Service    string
	Time       time.Time
	Severity   string
	Body       any
	Attributes map[string]any
	TraceID    string
	SpanID     string
}

// Receiver is a running OTLP/HTTP receiver.
type Receiver struct {
	// Endpoint is the base URL to configure exporters with, "http://127.0.0.1:PORT".
	Endpoint string
	// Addr is "127.0.0.1:PORT".
	Addr string

	srv     *http.Server
	ln      net.Listener
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever data arrives
	spans   []Span
	logs    []LogRecord
	batches int
	printed map[string]bool
}

// Start listens on addr ("127.0.0.1:0" for a random port) and serves until Close.
func Start(addr string) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("otlpreceiver: %w", err)
	}
	r := &Receiver{ln: ln, Addr: ln.Addr().String(), changed: make(chan struct{}), printed: map[string]bool{}}
	r.Endpoint = "http://" + r.Addr
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.handleTraces)
	mux.HandleFunc("POST /v1/logs", r.handleLogs)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return r, nil
}

// Close stops the receiver.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

func readBody(req *http.Request) ([]byte, error) {
	var body io.Reader = http.MaxBytesReader(nil, req.Body, maxBody)
	if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		body = io.LimitReader(zr, maxBody)
	}
	return io.ReadAll(body)
}

func isJSON(req *http.Request) bool {
	return strings.HasPrefix(req.Header.Get("Content-Type"), "application/json")
}

// unmarshaler is an OTLP export request of any signal.
type unmarshaler interface {
	UnmarshalJSON([]byte) error
	UnmarshalProto([]byte) error
}

// decodeExport reads an export request body (protobuf or JSON, gzip or plain) into er; on failure
// it answers 400 and returns false.
func decodeExport(w http.ResponseWriter, req *http.Request, er unmarshaler) bool {
	data, err := readBody(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	if isJSON(req) {
		err = er.UnmarshalJSON(data)
	} else {
		err = er.UnmarshalProto(data)
	}
	if err != nil {
		http.Error(w, "decoding the export request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (r *Receiver) handleTraces(w http.ResponseWriter, req *http.Request) {
	er := ptraceotlp.NewExportRequest()
	if !decodeExport(w, req, &er) {
		return
	}
	spans := flattenTraces(er.Traces())
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.batches++
	r.notifyLocked()
	r.mu.Unlock()
	respond(w, isJSON(req), ptraceotlp.NewExportResponse())
}

func (r *Receiver) handleLogs(w http.ResponseWriter, req *http.Request) {
	er := plogotlp.NewExportRequest()
	if !decodeExport(w, req, &er) {
		return
	}
	recs := flattenLogs(er.Logs())
	r.mu.Lock()
	r.logs = append(r.logs, recs...)
	r.batches++
	r.notifyLocked()
	r.mu.Unlock()
	respond(w, isJSON(req), plogotlp.NewExportResponse())
}

type marshaler interface {
	MarshalProto() ([]byte, error)
	MarshalJSON() ([]byte, error)
}

func respond(w http.ResponseWriter, asJSON bool, resp marshaler) {
	var out []byte
	var err error
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		out, err = resp.MarshalJSON()
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, err = resp.MarshalProto()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(out) //nolint:errcheck // the exporter retries on its own
}

func (r *Receiver) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func flattenTraces(td ptrace.Traces) []Span {
	now := time.Now()
	var out []Span
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		svc := serviceName(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				s := ss.At(k)
				sp := Span{
					Service:    svc,
					TraceID:    s.TraceID().String(),
					SpanID:     s.SpanID().String(),
					TraceState: s.TraceState().AsRaw(),
					Name:       s.Name(),
					Kind:       strings.TrimPrefix(s.Kind().String(), "SPAN_KIND_"),
					Start:      s.StartTimestamp().AsTime(),
					End:        s.EndTimestamp().AsTime(),
					Attributes: s.Attributes().AsRaw(),
					StatusCode: s.Status().Code().String(),
					StatusMsg:  s.Status().Message(),
					received:   now,
				}
				if p := s.ParentSpanID(); !p.IsEmpty() {
					sp.ParentSpanID = p.String()
				}
				evs := s.Events()
				for e := 0; e < evs.Len(); e++ {
					ev := evs.At(e)
					sp.Events = append(sp.Events, Event{Name: ev.Name(), Time: ev.Timestamp().AsTime(), Attributes: ev.Attributes().AsRaw()})
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

func flattenLogs(ld plog.Logs) []LogRecord {
	var out []LogRecord
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		svc := serviceName(rl.Resource().Attributes())
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				l := lrs.At(k)
				rec := LogRecord{
					Service:    svc,
					Time:       l.Timestamp().AsTime(),
					Severity:   l.SeverityText(),
					Body:       l.Body().AsRaw(),
					Attributes: l.Attributes().AsRaw(),
				}
				if id := l.TraceID(); !id.IsEmpty() {
					rec.TraceID = id.String()
				}
				if id := l.SpanID(); !id.IsEmpty() {
					rec.SpanID = id.String()
				}
				out = append(out, rec)
			}
		}
	}
	return out
}

func serviceName(m pcommon.Map) string {
	if v, ok := m.Get("service.name"); ok {
		return v.AsString()
	}
	return ""
}

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Logs returns a copy of every log record received so far.
func (r *Receiver) Logs() []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]LogRecord(nil), r.logs...)
}

// Batches is the number of export requests received.
func (r *Receiver) Batches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batches
}

// Reset forgets everything received.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans, r.logs = nil, nil
	r.printed = map[string]bool{}
}

// ErrTimeout is returned by the Wait functions when their condition was not met in time.
var ErrTimeout = errors.New("otlpreceiver: timed out waiting")

// WaitSpans waits until cond holds for the spans received so far and returns them. It wakes on
// every export request, so no polling interval is involved.
func (r *Receiver) WaitSpans(timeout time.Duration, cond func([]Span) bool) ([]Span, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans := append([]Span(nil), r.spans...)
		ch := r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return spans, ErrTimeout
		}
	}
}

// WaitLogs is WaitSpans for log records.
func (r *Receiver) WaitLogs(timeout time.Duration, cond func([]LogRecord) bool) ([]LogRecord, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		logs := append([]LogRecord(nil), r.logs...)
		ch := r.changed
		r.mu.Unlock()
		if cond(logs) {
			return logs, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return logs, ErrTimeout
		}
	}
}

// Changed returns a channel closed at the next export request received.
func (r *Receiver) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Trace returns the spans of one trace, sorted by start time.
func Trace(spans []Span, traceID string) []Span {
	var out []Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// FinishedTraces returns, once each, the traces that have a root (a span whose parent was not
// received) and received no span for quiet: a trace's spans come from several services and
// batches, so "finished" can only mean "gone quiet".
func (r *Receiver) FinishedTraces(quiet time.Duration) [][]Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := map[string]time.Time{}
	for _, s := range r.spans {
		if !r.printed[s.TraceID] && s.received.After(last[s.TraceID]) {
			last[s.TraceID] = s.received
		}
	}
	var ids []string
	for id, t := range last {
		if time.Since(t) >= quiet {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return last[ids[i]].Before(last[ids[j]]) })
	var out [][]Span
	for _, id := range ids {
		r.printed[id] = true
		out = append(out, Trace(r.spans, id))
	}
	return out
}
