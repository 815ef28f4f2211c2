package fhlayout

import (
	"bufio"
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// TestOffsetsFound checks that every list was found, each at its own place inside the header.
func TestOffsetsFound(t *testing.T) {
	resp, req := unsafe.Sizeof(fasthttp.ResponseHeader{}), unsafe.Sizeof(fasthttp.RequestHeader{})
	kvs, names := unsafe.Sizeof([]KV(nil)), unsafe.Sizeof([][]byte(nil))
	for _, c := range []struct {
		name             string
		off, size, limit uintptr
	}{
		{"response cookies", at.respCookies, kvs, resp},
		{"response fields", at.respFields, kvs, resp},
		{"response trailer names", at.respTrailer, names, resp},
		{"response disableNormalizing", at.respNoNormalizing, 1, resp},
		{"request fields", at.reqFields, kvs, req},
		{"request trailers", at.reqTrailers, kvs, req},
		{"request trailer names", at.reqTrailer, names, req},
	} {
		if c.off+c.size > c.limit {
			t.Errorf("%s at %d+%d, past the header's %d bytes", c.name, c.off, c.size, c.limit)
		}
	}
	seen := map[uintptr]bool{}
	for _, o := range []uintptr{at.respCookies, at.respFields, at.respTrailer, at.respNoNormalizing} {
		if seen[o] {
			t.Errorf("two response lists at %d", o)
		}
		seen[o] = true
	}
	if at.reqFields == at.reqTrailers || at.reqTrailer == at.reqFields || at.reqTrailer == at.reqTrailers {
		t.Errorf("request fields, trailers and trailer names at %d, %d, %d", at.reqFields, at.reqTrailers, at.reqTrailer)
	}
}

// TestRequestListsMatchPublicView reads a parsed request's lists through the package and checks
// them against what fasthttp's exported methods say.
func TestRequestListsMatchPublicView(t *testing.T) {
	var r fasthttp.Request
	raw := "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n" +
		"Authorization: a\r\nx-other: o\r\n\r\n1\r\na\r\n0\r\nx-t: t\r\n\r\n"
	if err := r.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	fields := *RequestFields(&r.Header)
	got := map[string]string{}
	for _, kv := range fields {
		got[string(kv.Key)] = string(kv.Value)
		if p := r.Header.PeekBytes(kv.Key); !bytes.Equal(p, kv.Value) {
			t.Errorf("field %q: %q through fhlayout, %q through Peek", kv.Key, kv.Value, p)
		}
	}
	if got["Authorization"] != "a" || got["X-Other"] != "o" {
		t.Errorf("request fields %q, want Authorization: a and X-Other: o among them", got)
	}
	trailers := *RequestTrailers(&r.Header)
	if len(trailers) != 1 || string(trailers[0].Key) != "X-T" || string(trailers[0].Value) != "t" {
		t.Fatalf("request trailers %s, want one X-T: t", show(trailers...))
	}
	if p := r.Header.Peek("X-T"); string(p) != "t" {
		t.Errorf("Peek(X-T) = %q, the trailer list says t", p)
	}
	if names := *RequestTrailerNames(&r.Header); len(names) != 1 || string(names[0]) != "X-T" {
		t.Errorf("request trailer names %q, want [X-T]", names)
	}
}

// TestResponseListsMatchPublicView does the same for a parsed response.
func TestResponseListsMatchPublicView(t *testing.T) {
	var r fasthttp.Response
	raw := "HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\nX-A: x\r\n" +
		"Trailer: X-T, X-U\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	if err := r.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	h := &r.Header

	var public []KV
	for k, v := range h.Cookies() {
		public = append(public, KV{Key: k, Value: v})
	}
	cookies := *ResponseCookies(h)
	if len(cookies) != 2 || len(cookies) != len(public) {
		t.Fatalf("cookies %s through fhlayout, %s through Cookies", show(cookies...), show(public...))
	}
	for i := range cookies {
		if !bytes.Equal(cookies[i].Key, public[i].Key) || !bytes.Equal(cookies[i].Value, public[i].Value) {
			t.Errorf("cookie %d: %s through fhlayout, %s through Cookies", i, show(cookies[i]), show(public[i]))
		}
	}

	fields := *ResponseFields(h)
	found := false
	for _, kv := range fields {
		found = found || string(kv.Key) == "X-A" && string(kv.Value) == "x"
		if p := h.PeekBytes(kv.Key); !bytes.Equal(p, kv.Value) {
			t.Errorf("field %q: %q through fhlayout, %q through Peek", kv.Key, kv.Value, p)
		}
	}
	if !found {
		t.Errorf("response fields %s, want X-A: x among them", show(fields...))
	}

	var names []string
	for n := range h.Trailers() {
		names = append(names, string(n))
	}
	var ours []string
	for _, n := range *ResponseTrailerNames(h) {
		ours = append(ours, string(n))
	}
	if strings.Join(ours, ",") != strings.Join(names, ",") || len(ours) != 2 {
		t.Errorf("trailer names %q through fhlayout, %q through Trailers", ours, names)
	}

	if *ResponseNoNormalizing(h) {
		t.Error("disableNormalizing set on a fresh response")
	}
	h.DisableNormalizing()
	if !*ResponseNoNormalizing(h) {
		t.Error("disableNormalizing not set after DisableNormalizing")
	}
}

// TestMismatchPanics checks that find refuses a field of another shape or a missing one.
func TestMismatchPanics(t *testing.T) {
	resp := reflect.TypeFor[fasthttp.ResponseHeader]()
	for _, c := range []struct {
		name string
		ours any
	}{
		{"cookies", [][]byte(nil)},               // a list of entries, not of names
		{"trailer", []KV(nil)},                   // a list of names, not of entries
		{"disableNormalizing", int(0)},           // a bool
		{"noSuchField", false},                   // absent
		{"cookies", []struct{ Key []byte }(nil)}, // an entry of another shape
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("find(%s as %T) did not panic", c.name, c.ours)
				}
			}()
			find(resp, c.name, reflect.TypeOf(c.ours))
		}()
	}
}

// show is the entries as "name: value" lines, for failure messages.
func show(l ...KV) string {
	var b strings.Builder
	for _, kv := range l {
		fmt.Fprintf(&b, "%q: %q; ", kv.Key, kv.Value)
	}
	return "[" + b.String() + "]"
}
