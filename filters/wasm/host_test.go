package wasm

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestLogSpanEvents checks that guest log lines also become events on the request's span.
func TestLogSpanEvents(t *testing.T) {
	f, _ := newFilter(t, "goguest", nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	c := enginetest.NewCtx(t, "GET", "/", "x-test", "log")
	c.Context = ctx
	enginetest.Serve(c, backend, f)
	span.End()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	var msgs []string
	for _, ev := range spans[0].Events() {
		if ev.Name != "wasm.log" {
			continue
		}
		for _, a := range ev.Attributes {
			if a.Key == "log.message" {
				msgs = append(msgs, a.Value.AsString())
			}
		}
	}
	if got := strings.Join(msgs, "|"); got != "guest says level -1|guest says level 0|guest says level 1|guest says level 2" {
		t.Errorf("span events %q", got)
	}
}

// TestSourceAddr checks get_source_addr's formats: IPv4 and IPv6 peers, and a client address
// learned from a trusted proxy (whose port is unknown, reported as 0).
func TestSourceAddr(t *testing.T) {
	f, _ := newFilter(t, "goguest", nil)
	for _, tc := range []struct{ client, want string }{
		{"127.0.0.1", "127.0.0.1:40000"},
		{"10.1.2.3", "10.1.2.3:0"},
		{"2001:db8::1", "[2001:db8::1]:0"},
	} {
		c := enginetest.NewCtx(t, "GET", "/", "x-test", "info")
		c.ClientAddr = netip.MustParseAddr(tc.client)
		enginetest.Serve(c, backend, f)
		if got := string(c.Response.Body()); !strings.HasSuffix(got, " "+tc.want) {
			t.Errorf("client %s: info %q, want source %s", tc.client, got, tc.want)
		}
	}
}

// FuzzHostBuffers calls the buffer-writing host functions with arbitrary buf/buf_limit and
// kinds on a real instance: they must either trap (a trap panic) or write only inside
// [buf, buf+buf_limit), never panic otherwise or touch memory outside the window.
func FuzzHostBuffers(f *testing.F) {
	f.Add(uint8(0), uint32(0), uint32(0), uint32(1), uint32(5))
	f.Add(uint8(3), uint32(65530), uint32(100), uint32(0), uint32(4))
	f.Add(uint8(10), uint32(100), uint32(3), uint32(2), uint32(0xffffffff))
	filter, _ := newFilter(f, "bench", nil)
	in, err := filter.acquire()
	if err != nil {
		f.Fatal(err)
	}
	c := enginetest.NewCtx(f, "POST", "/fuzz/path?q=1", "x-id", "abc", "x-id", "def", "Accept", "*/*")
	c.Request.SetBodyString(strings.Repeat("body ", 50))
	in.begin(c)
	mem := in.mod.Memory()
	fns := []struct {
		name string
		call func(stack []uint64)
	}{
		{"get_config", func(s []uint64) { getConfig(&in.cc, in.mod, s) }},
		{"get_method", func(s []uint64) { getMethod(&in.cc, in.mod, s) }},
		{"get_uri", func(s []uint64) { getURI(&in.cc, in.mod, s) }},
		{"get_protocol_version", func(s []uint64) { getProtocolVersion(&in.cc, in.mod, s) }},
		{"get_source_addr", func(s []uint64) { getSourceAddr(&in.cc, in.mod, s) }},
		{"get_header_names", func(s []uint64) { getHeaderNames(&in.cc, in.mod, s) }},
		{"read_body", func(s []uint64) { readBody(&in.cc, in.mod, s) }},
	}
	f.Fuzz(func(t *testing.T, which uint8, buf, limit, kind, extra uint32) {
		fn := fns[int(which)%len(fns)]
		before := append([]byte(nil), mustRead(t, mem)...)
		var stack [8]uint64
		switch fn.name {
		case "get_header_names", "read_body":
			stack[0], stack[1], stack[2] = uint64(kind), uint64(buf), uint64(limit)
		default:
			stack[0], stack[1] = uint64(buf), uint64(limit)
		}
		in.reqBodyRead = int(extra % 300)
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(trap); !ok {
						t.Fatalf("%s panicked with %v, not a trap", fn.name, r)
					}
				}
			}()
			fn.call(stack[:])
		}()
		after := mustRead(t, mem)
		for i := range after {
			inside := uint64(i) >= uint64(buf) && uint64(i) < uint64(buf)+uint64(limit)
			if !inside && after[i] != before[i] {
				t.Fatalf("%s(buf=%d, limit=%d) wrote at %d, outside its window", fn.name, buf, limit, i)
			}
		}
		copy(after, before)
	})
}

func mustRead(t *testing.T, mem interface {
	Read(uint32, uint32) ([]byte, bool)
	Size() uint32
}) []byte {
	b, ok := mem.Read(0, mem.Size())
	if !ok {
		t.Fatal("cannot read memory")
	}
	return b
}

func TestValidToken(t *testing.T) {
	for s, want := range map[string]bool{
		"GET": true, "x-custom_header.1~": true, "!#$%&'*+-.^_`|~": true,
		"": false, "a b": false, "a:b": false, "a\r\n": false, "a(b": false, "é": false, "a/b": false,
	} {
		if got := validToken([]byte(s)); got != want {
			t.Errorf("validToken(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestAppendCanonical checks that set_header_value's path (the name normalised by
// AppendNormalizedHeaderKeyBytes, stored with SetCanonical) gives what fasthttp's SetBytesKV
// would have stored, for every token byte in every position.
func TestAppendCanonical(t *testing.T) {
	var names []string
	for c := 0; c < 256; c++ {
		if tokenByte[c] {
			names = append(names, string([]byte{byte(c)}), "x-"+string([]byte{byte(c)})+"a", "A"+string([]byte{byte(c)})+"B")
		}
	}
	names = append(names, "x-wasm", "X-WASM", "content-type", "HOST", "x--y", "-x", "x-")
	for _, name := range names {
		var viaKV, viaCanonical fasthttp.ResponseHeader
		viaKV.SetBytesKV([]byte(name), []byte("v"))
		viaCanonical.SetCanonical(fasthttp.AppendNormalizedHeaderKeyBytes(nil, []byte(name)), []byte("v"))
		if a, b := viaKV.String(), viaCanonical.String(); a != b {
			t.Errorf("name %q: SetBytesKV stores\n%s\nAppendNormalizedHeaderKeyBytes + SetCanonical stores\n%s", name, a, b)
		}
	}
}
