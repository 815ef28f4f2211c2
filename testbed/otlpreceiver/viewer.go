package otlpreceiver

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// entrySpan is the span where a trace entered the first service that exported it: a server span
// whose parent was not received (the client's), or nil.
func entrySpan(spans []Span) *Span {
	ids := make(map[string]bool, len(spans))
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	var entry *Span
	for i := range spans {
		s := &spans[i]
		if s.Kind == "Server" && (s.ParentSpanID == "" || !ids[s.ParentSpanID]) {
			if entry == nil || s.Start.Before(entry.Start) {
				entry = s
			}
		}
	}
	return entry
}

// CompletedTraces returns, once each, the traces whose entry server span (see entrySpan) arrived
// at least settle ago, in the order their requests started. A server span ends after its filter
// and client spans, so its trace is complete then (bar spans of slower services downstream);
// settle lets batches exported at about the same time arrive, so that the order holds.
func (r *Receiver) CompletedTraces(settle time.Duration) [][]Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	byTrace := map[string][]Span{}
	for _, s := range r.spans {
		if !r.printed[s.TraceID] {
			byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
		}
	}
	type ready struct {
		start time.Time
		spans []Span
	}
	var out []ready
	for id, spans := range byTrace {
		e := entrySpan(spans)
		if e == nil || time.Since(e.received) < settle {
			continue
		}
		r.printed[id] = true
		out = append(out, ready{e.Start, Trace(r.spans, id)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	traces := make([][]Span, len(out))
	for i, t := range out {
		traces[i] = t.spans
	}
	return traces
}

// FormatTrace renders a trace with a heading naming its request (method, path, status, start
// time and duration, from the entry server span) above FormatTree's tree.
func FormatTrace(spans []Span) string {
	if len(spans) == 0 {
		return ""
	}
	var b strings.Builder
	if e := entrySpan(spans); e != nil {
		method, path := e.Attributes["http.request.method"], e.Attributes["url.path"]
		if method == nil {
			method = "?"
		}
		if path == nil {
			path = e.Name
		}
		fmt.Fprintf(&b, "%s %v %v → %v  %s  %s\n", e.Start.Format("15:04:05.000"), method, path,
			statusOf(*e), formatDuration(e.Duration()), e.Service)
	}
	b.WriteString(FormatTree(spans))
	return b.String()
}

func statusOf(s Span) string {
	if v, ok := s.Attributes["http.response.status_code"]; ok {
		return fmt.Sprint(v)
	}
	return "-"
}

// TraceFilter selects the traces the viewer prints: by the entry span's status and by trace id.
type TraceFilter struct {
	statuses []string // "404", "4xx", "error"; empty: any
	traceID  string   // a prefix of the trace id; empty: any
}

// ParseTraceFilter reads the viewer's flags: status is a comma-separated list of codes ("404"),
// classes ("4xx", "5xx") or "error" (a span of the trace failed); traceID a trace id or a prefix
// of one.
func ParseTraceFilter(status, traceID string) (TraceFilter, error) {
	f := TraceFilter{traceID: strings.ToLower(strings.TrimSpace(traceID))}
	for _, s := range strings.Split(status, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		switch {
		case s == "":
			continue
		case s == "error":
		case len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5':
		default:
			if n, err := strconv.Atoi(s); err != nil || n < 100 || n > 599 {
				return TraceFilter{}, fmt.Errorf("status %q: want a code (404), a class (4xx) or error", s)
			}
		}
		f.statuses = append(f.statuses, s)
	}
	return f, nil
}

// Match reports whether the trace passes the filter.
func (f TraceFilter) Match(spans []Span) bool {
	if len(spans) == 0 {
		return false
	}
	if f.traceID != "" && !strings.HasPrefix(spans[0].TraceID, f.traceID) {
		return false
	}
	if len(f.statuses) == 0 {
		return true
	}
	status := "-"
	if e := entrySpan(spans); e != nil {
		status = statusOf(*e)
	}
	for _, want := range f.statuses {
		switch {
		case want == "error":
			for _, s := range spans {
				if s.StatusCode == "Error" {
					return true
				}
			}
		case strings.HasSuffix(want, "xx"):
			if len(status) == 3 && status[0] == want[0] {
				return true
			}
		case status == want:
			return true
		}
	}
	return false
}
