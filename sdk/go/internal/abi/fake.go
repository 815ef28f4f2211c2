//go:build !wasip1

package abi

import (
	"strings"
)

// Field is one header line.
type Field struct{ Name, Value string }

// FakeHost is the state of the in-process host used outside wasm: one request and its response.
// It follows the ABI's rules (fit-or-nothing writes, lower-case names, NUL-terminated lists) so
// code tested against it behaves the same against Sluice.
type FakeHost struct {
	Config                  []byte
	Features                uint32 // features the fake supports (enable_features result mask)
	Enabled                 uint32
	Method, URI             string
	Protocol, SourceAddr    string
	ReqHeader, RespHeader   []Field
	RespTrailer             []Field // response trailers (the trailers feature)
	ReqBody, RespBody       []byte
	Status                  uint32
	Logs                    []string
	reqRead, respRead       int
	reqWritten, respWritten bool
}

// Fake is the host the package functions talk to; tests replace it with Reset.
var Fake = &FakeHost{}

// Reset installs a fresh fake host for one request and returns it.
func Reset() *FakeHost {
	Fake = &FakeHost{Features: 1 | 2 | 4, Method: "GET", URI: "/", Protocol: "HTTP/1.1",
		SourceAddr: "127.0.0.1:40000", Status: 200}
	return Fake
}

// StartPhase clears the per-phase body state, as the host does between handle_request and
// handle_response (the first write_body of a phase replaces the body).
func (f *FakeHost) StartPhase() { f.reqWritten, f.respWritten, f.respRead = false, false, 0 }

// headers returns the fields of a kind. Trailers behave as in Sluice: without the trailers
// feature they read as none and changing one panics; request trailers always read as none and
// cannot be set (Sluice does not send request trailers upstream).
func (f *FakeHost) headers(kind uint32, change bool) *[]Field {
	switch kind {
	case KindRequest:
		return &f.ReqHeader
	case KindResponse:
		return &f.RespHeader
	}
	switch {
	case change && f.Enabled&4 == 0:
		panic("abi fake: trailers need the trailers feature")
	case change && kind == KindRequestTrailers:
		panic("abi fake: request trailers are not sent upstream")
	case kind == KindResponseTrailers && f.Enabled&4 != 0:
		return &f.RespTrailer
	}
	return new([]Field)
}

// Get returns the first value of a header, matched case-insensitively.
func Get(h []Field, name string) (string, bool) {
	for _, fl := range h {
		if strings.EqualFold(fl.Name, name) {
			return fl.Value, true
		}
	}
	return "", false
}

func put(buf []byte, v string) uint32 {
	if len(v) <= len(buf) {
		copy(buf, v)
	}
	return uint32(len(v))
}

func EnableFeatures(f uint32) uint32 { Fake.Enabled |= f & Fake.Features; return Fake.Enabled }
func GetConfig(buf []byte) uint32    { return put(buf, string(Fake.Config)) }
func Log(level int32, msg string)    { Fake.Logs = append(Fake.Logs, msg) }
func LogEnabled(level int32) bool    { return level >= 0 }
func GetMethod(buf []byte) uint32    { return put(buf, Fake.Method) }
func SetMethod(s string)             { Fake.Method = s }
func GetURI(buf []byte) uint32 {
	if Fake.URI == "" {
		return put(buf, "/")
	}
	return put(buf, Fake.URI)
}
func SetURI(s string)                      { Fake.URI = s }
func GetProtocolVersion(buf []byte) uint32 { return put(buf, Fake.Protocol) }
func GetSourceAddr(buf []byte) uint32      { return put(buf, Fake.SourceAddr) }

func list(buf []byte, items []string) uint64 {
	if len(items) == 0 {
		return 0
	}
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it)
		b.WriteByte(0)
	}
	n := put(buf, b.String())
	return uint64(len(items))<<32 | uint64(n)
}

func GetHeaderNames(kind uint32, buf []byte) uint64 {
	var names []string
	seen := map[string]bool{}
	for _, fl := range *Fake.headers(kind, false) {
		n := strings.ToLower(fl.Name)
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return list(buf, names)
}

func GetHeaderValues(kind uint32, name string, buf []byte) uint64 {
	var vals []string
	for _, fl := range *Fake.headers(kind, false) {
		if strings.EqualFold(fl.Name, name) {
			vals = append(vals, fl.Value)
		}
	}
	return list(buf, vals)
}

func SetHeaderValue(kind uint32, name, value string) {
	RemoveHeader(kind, name)
	AddHeaderValue(kind, name, value)
}

func AddHeaderValue(kind uint32, name, value string) {
	h := Fake.headers(kind, true)
	*h = append(*h, Field{name, value})
}

func RemoveHeader(kind uint32, name string) {
	h := Fake.headers(kind, true)
	kept := (*h)[:0]
	for _, fl := range *h {
		if !strings.EqualFold(fl.Name, name) {
			kept = append(kept, fl)
		}
	}
	*h = kept
}

func ReadBody(kind uint32, buf []byte) uint64 {
	if len(buf) == 0 {
		panic("abi fake: read_body with buf_limit 0")
	}
	body, off := Fake.ReqBody, &Fake.reqRead
	if kind == KindResponse {
		body, off = Fake.RespBody, &Fake.respRead
	}
	n := copy(buf, body[*off:])
	*off += n
	var eof uint64
	if *off >= len(body) {
		eof = 1
	}
	return eof<<32 | uint64(n)
}

func WriteBody(kind uint32, b []byte) {
	if kind == KindResponse {
		if !Fake.respWritten {
			Fake.RespBody, Fake.respWritten = nil, true
		}
		Fake.RespBody = append(Fake.RespBody, b...)
		return
	}
	if !Fake.reqWritten {
		Fake.ReqBody, Fake.reqWritten = nil, true
	}
	Fake.ReqBody = append(Fake.ReqBody, b...)
}

func GetStatusCode() uint32     { return Fake.Status }
func SetStatusCode(code uint32) { Fake.Status = code }
