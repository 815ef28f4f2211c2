package otlpreceiver

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Node is a span with its children, sorted by start time.
type Node struct {
	Span     Span
	Children []*Node
}

// Tree arranges one trace's spans by parent. Spans whose parent was not received (the client's
// span, when the gateway continued a trace) are roots.
func Tree(spans []Span) []*Node {
	nodes := make(map[string]*Node, len(spans))
	for _, s := range spans {
		nodes[s.SpanID] = &Node{Span: s}
	}
	var roots []*Node
	for _, s := range spans {
		n := nodes[s.SpanID]
		if p, ok := nodes[s.ParentSpanID]; ok && s.ParentSpanID != "" && p != n {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	var sortNodes func([]*Node)
	sortNodes = func(ns []*Node) {
		sort.SliceStable(ns, func(i, j int) bool { return ns[i].Span.Start.Before(ns[j].Span.Start) })
		for _, n := range ns {
			sortNodes(n.Children)
		}
	}
	sortNodes(roots)
	return roots
}

// FormatTree renders one trace as an indented tree, a line per span with its service, kind,
// duration, start (an offset from the trace's first span) and the attributes that tell requests
// apart:
//
//	trace 4bf92f3577b34da6a3ce929d0e0e4736
//	└─ GET /api/* [sluice server] 2.41ms status=200
//	   ├─ otel_log request 3µs @+4µs
//	   ├─ jwt request 41µs @+9µs verdict=continue
//	   ├─ GET [sluice client] 1.90ms @+60µs → 127.0.0.1:9001 status=200
//	   │  └─ GET /items [catalog server] 1.20ms @+0.31ms status=200
//	   └─ otel_log response 6µs @+2.39ms
func FormatTree(spans []Span) string {
	if len(spans) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s\n", spans[0].TraceID)
	roots := Tree(spans)
	origin := roots[0].Span.Start
	for i, n := range roots {
		writeNode(&b, n, "", i == len(roots)-1, origin)
	}
	return b.String()
}

// writeNode writes n and its children; each span's start shows as an offset from origin, the
// first root's start ("@+59µs").
func writeNode(b *strings.Builder, n *Node, indent string, last bool, origin time.Time) {
	branch, next := "├─ ", "│  "
	if last {
		branch, next = "└─ ", "   "
	}
	s := n.Span
	b.WriteString(indent)
	b.WriteString(branch)
	b.WriteString(s.Name)
	if s.Kind == "Server" || s.Kind == "Client" || s.Kind == "Producer" || s.Kind == "Consumer" {
		fmt.Fprintf(b, " [%s %s]", s.Service, strings.ToLower(s.Kind))
	}
	b.WriteString(" ")
	b.WriteString(formatDuration(s.Duration()))
	if off := s.Start.Sub(origin); off > 0 {
		b.WriteString(" @+")
		b.WriteString(formatDuration(off))
	}
	if addr, ok := s.Attributes["server.address"]; ok && s.Kind == "Client" {
		fmt.Fprintf(b, " → %v", addr)
		if port, ok := s.Attributes["server.port"]; ok {
			fmt.Fprintf(b, ":%v", port)
		}
	}
	for _, k := range []string{"http.response.status_code", "sluice.verdict", "http.request.resend_count", "error.type"} {
		if v, ok := s.Attributes[k]; ok {
			fmt.Fprintf(b, " %s=%v", shortKey(k), v)
		}
	}
	if s.StatusCode == "Error" {
		b.WriteString(" ERROR")
		if s.StatusMsg != "" {
			fmt.Fprintf(b, " (%s)", s.StatusMsg)
		}
	}
	b.WriteString("\n")
	for _, ev := range s.Events {
		fmt.Fprintf(b, "%s%s  • %s", indent, next, ev.Name)
		for _, k := range sortedKeys(ev.Attributes) {
			fmt.Fprintf(b, " %s=%q", k, fmt.Sprint(ev.Attributes[k]))
		}
		b.WriteString("\n")
	}
	for i, c := range n.Children {
		writeNode(b, c, indent+next, i == len(n.Children)-1, origin)
	}
}

func shortKey(k string) string {
	switch k {
	case "http.response.status_code":
		return "status"
	case "sluice.verdict":
		return "verdict"
	case "http.request.resend_count":
		return "resend"
	}
	return k
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
