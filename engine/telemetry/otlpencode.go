package telemetry

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP trace export request, encoded straight from the finished spans into one reused
// buffer (opentelemetry-proto's collector/trace/v1 ExportTraceServiceRequest and the messages
// under it; the field numbers below are theirs). The OTLP exporter of the SDK copies every span
// into generated message structs first, about a dozen allocations per span, then marshals
// those; encoding directly allocates nothing per span.

// Field numbers of the messages written.
const (
	fReqResourceSpans = 1 // ExportTraceServiceRequest.resource_spans

	fRSResource   = 1 // ResourceSpans.resource
	fRSScopeSpans = 2 // ResourceSpans.scope_spans
	fRSSchemaURL  = 3 // ResourceSpans.schema_url

	fResAttributes = 1 // Resource.attributes

	fSSScope = 1 // ScopeSpans.scope
	fSSSpans = 2 // ScopeSpans.spans

	fScopeName    = 1 // InstrumentationScope.name
	fScopeVersion = 2 // InstrumentationScope.version

	fSpanTraceID    = 1
	fSpanSpanID     = 2
	fSpanTraceState = 3
	fSpanParentID   = 4
	fSpanName       = 5
	fSpanKind       = 6
	fSpanStart      = 7  // fixed64
	fSpanEnd        = 8  // fixed64
	fSpanAttributes = 9  // KeyValue
	fSpanDropAttrs  = 10 // uint32
	fSpanEvents     = 11
	fSpanDropEvents = 12
	fSpanLinks      = 13
	fSpanDropLinks  = 14
	fSpanStatus     = 15
	fSpanFlags      = 16 // fixed32

	fEventTime       = 1 // fixed64
	fEventName       = 2
	fEventAttributes = 3

	fLinkTraceID    = 1
	fLinkSpanID     = 2
	fLinkTraceState = 3
	fLinkAttributes = 4
	fLinkFlags      = 6 // fixed32

	fStatusMessage = 2
	fStatusCode    = 3

	fKVKey   = 1
	fKVValue = 2

	fAnyString = 1
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4
	fAnyArray  = 5 // ArrayValue{values = 1}
)

// SpanFlags bits: the span's trace flags in the low byte, and whether its parent is remote.
const (
	spanFlagsHasIsRemote = 0x100
	spanFlagsIsRemote    = 0x200
)

// appendTag writes the tag of a field numbered below 16: one byte, inline (protowire's general
// functions, not inlined, cost more than a third of the encoding). SpanFlags (16) is written with
// protowire.AppendTag.
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return append(b, byte(num)<<3|byte(typ))
}

// appendVarint writes a value below 128 as the one byte it encodes to, inline: most lengths here
// are. Larger values go to protowire.

func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// appendLenString appends a length-delimited value.
func appendLenString(b []byte, s string) []byte {
	return append(appendVarint(b, uint64(len(s))), s...)
}

// beginMsg appends the tag of a length-delimited field and a one-byte length placeholder; it
// returns where the field's content starts, for endMsg.
func beginMsg(b []byte, num protowire.Number) ([]byte, int) {
	b = appendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

// endMsg writes the length of the field begun at start, moving its content when the length
// takes more than the byte reserved.
func endMsg(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	sz := protowire.SizeVarint(uint64(n))
	if sz > 1 {
		for range sz - 1 {
			b = append(b, 0)
		}
		copy(b[start+sz-1:], b[start:start+n])
	}
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = appendTag(b, num, protowire.BytesType)
	return appendLenString(b, s)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = appendTag(b, num, protowire.BytesType)
	return append(appendVarint(b, uint64(len(v))), v...)
}

func appendFixed64Field(b []byte, num protowire.Number, v uint64) []byte {
	b = appendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, num, protowire.VarintType)
	return appendVarint(b, v)
}

// appendExportRequest appends the ExportTraceServiceRequest carrying spans, each run of spans
// with the same resource and instrumentation scope under one ResourceSpans and ScopeSpans (the
// gateway's own spans share both; spans filters start with the OpenTelemetry API have their own
// scope, and when they come between the gateway's, the request repeats the resource: valid
// OTLP, a few bytes longer).
func appendExportRequest(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	for i := 0; i < len(spans); {
		res := spans[i].Resource()
		var rs int
		b, rs = beginMsg(b, fReqResourceSpans)
		b = appendResource(b, res)
		for i < len(spans) && sameResource(spans[i].Resource(), res) {
			scope := spans[i].InstrumentationScope()
			var ss int
			b, ss = beginMsg(b, fRSScopeSpans)
			var sc int
			b, sc = beginMsg(b, fSSScope)
			b = appendStringField(b, fScopeName, scope.Name)
			b = appendStringField(b, fScopeVersion, scope.Version)
			b = endMsg(b, sc)
			// The observer's records of one telemetry instance share both: they are told by
			// their recordExport without the two interface calls and comparisons per span.
			first, _ := spans[i].(*spanRecord)
			for i < len(spans) {
				if r, ok := spans[i].(*spanRecord); ok && first != nil && r.exp == first.exp {
					b = appendRecord(b, r)
				} else if sameResource(spans[i].Resource(), res) && sameScope(spans[i].InstrumentationScope(), scope) {
					b = appendSpan(b, spans[i])
				} else {
					break
				}
				i++
			}
			b = endMsg(b, ss)
		}
		if res != nil {
			b = appendStringField(b, fRSSchemaURL, res.SchemaURL())
		}
		b = endMsg(b, rs)
	}
	return b
}

func sameResource(a, b *resource.Resource) bool {
	return a == b || a != nil && b != nil && a.Equivalent() == b.Equivalent() && a.SchemaURL() == b.SchemaURL()
}

func sameScope(a, b instrumentation.Scope) bool {
	return a.Name == b.Name && a.Version == b.Version && a.SchemaURL == b.SchemaURL
}

func appendResource(b []byte, res *resource.Resource) []byte {
	var r int
	b, r = beginMsg(b, fRSResource)
	if res != nil {
		for it := res.Iter(); it.Next(); {
			b = appendKeyValue(b, fResAttributes, it.Attribute())
		}
	}
	return endMsg(b, r)
}

// appendSpan appends s as a ScopeSpans.spans field.
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	if r, ok := s.(*spanRecord); ok {
		return appendRecord(b, r)
	}
	return encodeSpan(b, s)
}

// appendRecord is encodeSpan for the observer's records, from their fields: through the
// ReadOnlySpan interface each span cost a dozen calls and two SpanContexts built and copied.
// A record has no links and drops nothing; its tracestate is kept valid, unparsed.
//
// The span's length is reserved as two bytes, which a span of 128 to 16,383 bytes (the usual
// size: a one-byte placeholder meant moving every span) fills in place (endSpan); its usual
// attributes are written straight (appendAttr), and those fixed per pipeline stage or upstream
// target are copied as the bytes encoded once (fixedPB).
func appendRecord(b []byte, r *spanRecord) []byte {
	b = append(b, fSSSpans<<3|byte(protowire.BytesType), 0, 0)
	start := len(b)
	b = append(b, fSpanTraceID<<3|byte(protowire.BytesType), 16)
	b = append(b, r.traceID[:]...)
	b = append(b, fSpanSpanID<<3|byte(protowire.BytesType), 8)
	b = append(b, r.spanID[:]...)
	b = appendStringField(b, fSpanTraceState, r.tstate)
	flags := uint32(r.flags) | spanFlagsHasIsRemote
	if r.parent.IsValid() {
		b = append(b, fSpanParentID<<3|byte(protowire.BytesType), 8)
		b = append(b, r.parent[:]...)
		if r.remote {
			flags |= spanFlagsIsRemote
		}
	}
	b = appendStringField(b, fSpanName, r.name)
	b = appendVarintField(b, fSpanKind, uint64(r.kind))
	b = appendFixed64Field(b, fSpanStart, unixNano(r.start))
	b = appendFixed64Field(b, fSpanEnd, unixNano(r.end))
	b = append(b, r.fixedPB...)
	for _, kv := range r.attrs {
		b = appendAttr(b, kv)
	}
	b = appendEvents(b, r.events)
	b = appendStatus(b, r.status)
	b = append(b, 0x85, 0x01) // SpanFlags: field 16, fixed32, a two-byte tag
	b = protowire.AppendFixed32(b, flags)
	return endSpan(b, start)
}

// endSpan writes the length of the span begun at start, after two reserved bytes: in place for
// 128 to 16,383 bytes, moving the span back a byte when shorter, forward when longer.
func endSpan(b []byte, start int) []byte {
	n := len(b) - start
	switch {
	case n < 0x80:
		b[start-2] = byte(n)
		copy(b[start-1:], b[start:])
		return b[:len(b)-1]
	case n < 0x4000:
		b[start-2], b[start-1] = byte(n)|0x80, byte(n>>7)
		return b
	}
	sz := protowire.SizeVarint(uint64(n))
	for range sz - 2 {
		b = append(b, 0)
	}
	copy(b[start+sz-2:], b[start:start+n])
	protowire.AppendVarint(b[:start-2], uint64(n))
	return b
}

// Span.attributes (field 9) and the fields of KeyValue and AnyValue under it, as their tags.
const (
	tagSpanAttr  = fSpanAttributes<<3 | 2
	tagKVKey     = fKVKey<<3 | 2
	tagKVValue   = fKVValue<<3 | 2
	tagAnyString = fAnyString<<3 | 2
	tagAnyInt    = fAnyInt << 3 // wire type 0, a varint
)

// appendAttr writes kv as a Span.attributes field: appendKeyValue's bytes, the usual attribute
// (a string or an integer, short enough that every length is one byte) written straight,
// without placeholders or calls per field.
func appendAttr(b []byte, kv attribute.KeyValue) []byte {
	k := string(kv.Key)
	switch kv.Value.Type() {
	case attribute.STRING:
		v := kv.Value.AsString()
		if n := 6 + len(k) + len(v); n < 0x80 {
			b = append(b, tagSpanAttr, byte(n), tagKVKey, byte(len(k)))
			b = append(b, k...)
			b = append(b, tagKVValue, byte(2+len(v)), tagAnyString, byte(len(v)))
			return append(b, v...)
		}
	case attribute.INT64:
		v := uint64(kv.Value.AsInt64())
		vn := protowire.SizeVarint(v)
		if n := 5 + len(k) + vn; n < 0x80 {
			b = append(b, tagSpanAttr, byte(n), tagKVKey, byte(len(k)))
			b = append(b, k...)
			b = append(b, tagKVValue, byte(1+vn), tagAnyInt)
			for v >= 0x80 {
				b = append(b, byte(v)|0x80)
				v >>= 7
			}
			return append(b, byte(v))
		}
	}
	return appendKeyValue(b, fSpanAttributes, kv)
}

// encodeSpan appends any ReadOnlySpan as a ScopeSpans.spans field.
func encodeSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	var sp int
	b, sp = beginMsg(b, fSSSpans)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytesField(b, fSpanTraceID, tid[:])
	b = appendBytesField(b, fSpanSpanID, sid[:])
	b = appendStringField(b, fSpanTraceState, sc.TraceState().String())
	flags := uint32(sc.TraceFlags()) | spanFlagsHasIsRemote
	if p := s.Parent(); p.IsValid() {
		pid := p.SpanID()
		b = appendBytesField(b, fSpanParentID, pid[:])
		if p.IsRemote() {
			flags |= spanFlagsIsRemote
		}
	}
	b = appendStringField(b, fSpanName, s.Name())
	b = appendVarintField(b, fSpanKind, uint64(s.SpanKind()))
	b = appendFixed64Field(b, fSpanStart, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64Field(b, fSpanEnd, unixNano(s.EndTime().UnixNano()))
	for _, kv := range s.Attributes() {
		b = appendKeyValue(b, fSpanAttributes, kv)
	}
	b = appendVarintField(b, fSpanDropAttrs, uint64(s.DroppedAttributes()))
	b = appendEvents(b, s.Events())
	b = appendVarintField(b, fSpanDropEvents, uint64(s.DroppedEvents()))
	for _, l := range s.Links() {
		var lk int
		b, lk = beginMsg(b, fSpanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendBytesField(b, fLinkTraceID, ltid[:])
		b = appendBytesField(b, fLinkSpanID, lsid[:])
		b = appendStringField(b, fLinkTraceState, l.SpanContext.TraceState().String())
		for _, kv := range l.Attributes {
			b = appendKeyValue(b, fLinkAttributes, kv)
		}
		lflags := uint32(l.SpanContext.TraceFlags()) | spanFlagsHasIsRemote
		if l.SpanContext.IsRemote() {
			lflags |= spanFlagsIsRemote
		}
		b = appendTag(b, fLinkFlags, protowire.Fixed32Type) // 6
		b = protowire.AppendFixed32(b, lflags)
		b = endMsg(b, lk)
	}
	b = appendVarintField(b, fSpanDropLinks, uint64(s.DroppedLinks()))
	b = appendStatus(b, s.Status())
	b = protowire.AppendTag(b, fSpanFlags, protowire.Fixed32Type) // 16: two bytes
	b = protowire.AppendFixed32(b, flags)
	return endMsg(b, sp)
}

func appendEvents(b []byte, events []sdktrace.Event) []byte {
	for _, ev := range events {
		var e int
		b, e = beginMsg(b, fSpanEvents)
		b = appendFixed64Field(b, fEventTime, unixNano(ev.Time.UnixNano()))
		b = appendStringField(b, fEventName, ev.Name)
		for _, kv := range ev.Attributes {
			b = appendKeyValue(b, fEventAttributes, kv)
		}
		b = endMsg(b, e)
	}
	return b
}

// appendStatus appends the span's status, unless it is Unset.
func appendStatus(b []byte, st sdktrace.Status) []byte {
	if st.Code == codes.Unset {
		return b
	}
	var stm int
	b, stm = beginMsg(b, fSpanStatus)
	b = appendStringField(b, fStatusMessage, st.Description)
	code := uint64(2) // STATUS_CODE_ERROR
	if st.Code == codes.Ok {
		code = 1 // STATUS_CODE_OK
	}
	b = appendVarintField(b, fStatusCode, code)
	return endMsg(b, stm)
}

// unixNano is a timestamp's field value; a time before 1970 (never set) is 0.
func unixNano(ns int64) uint64 {
	if ns < 0 {
		return 0
	}
	return uint64(ns)
}

func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	var m int
	b, m = beginMsg(b, num)
	b = appendStringField(b, fKVKey, string(kv.Key))
	var v int
	b, v = beginMsg(b, fKVValue)
	b = appendAnyValue(b, kv.Value)
	b = endMsg(b, v)
	return endMsg(b, m)
}

func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b = appendTag(b, fAnyBool, protowire.VarintType)
		b = appendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = appendTag(b, fAnyInt, protowire.VarintType)
		b = appendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = appendTag(b, fAnyDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		// An empty string is still a string value: written, not omitted.
		b = appendTag(b, fAnyString, protowire.BytesType)
		b = appendLenString(b, v.AsString())
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
		var a int
		b, a = beginMsg(b, fAnyArray)
		for _, e := range sliceValues(v) {
			var ev int
			b, ev = beginMsg(b, 1) // ArrayValue.values
			b = appendAnyValue(b, e)
			b = endMsg(b, ev)
		}
		b = endMsg(b, a)
	}
	return b
}

// sliceValues splits a slice attribute into its elements (rare: none of the gateway's own).
func sliceValues(v attribute.Value) []attribute.Value {
	var out []attribute.Value
	switch v.Type() {
	case attribute.BOOLSLICE:
		for _, x := range v.AsBoolSlice() {
			out = append(out, attribute.BoolValue(x))
		}
	case attribute.INT64SLICE:
		for _, x := range v.AsInt64Slice() {
			out = append(out, attribute.Int64Value(x))
		}
	case attribute.FLOAT64SLICE:
		for _, x := range v.AsFloat64Slice() {
			out = append(out, attribute.Float64Value(x))
		}
	case attribute.STRINGSLICE:
		for _, x := range v.AsStringSlice() {
			out = append(out, attribute.StringValue(x))
		}
	}
	return out
}
