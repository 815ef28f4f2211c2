package main

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// TestDecodeSpans: `bench sink -decode` counts the spans of a valid export request, and refuses
// one that does not decode or holds a span without ids.
func TestDecodeSpans(t *testing.T) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := range 3 {
		s := ss.AppendEmpty()
		s.SetName("span")
		s.SetTraceID([16]byte{1})
		s.SetSpanID([8]byte{byte(i + 1)})
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := decodeSpans(body, false); n != 3 || err != nil {
		t.Errorf("valid request: %d spans, %v; want 3", n, err)
	}
	ss.AppendEmpty().SetName("no ids")
	body, _ = ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if _, err := decodeSpans(body, false); err == nil {
		t.Error("a span without ids was accepted")
	}
	if _, err := decodeSpans([]byte{0x0a, 0xff}, false); err == nil {
		t.Error("a truncated request was accepted")
	}
}
