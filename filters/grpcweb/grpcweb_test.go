package grpcweb

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// frame returns a gRPC length-prefixed message frame (flag 0) around msg.
func frame(msg string) []byte {
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// trailerFrame returns the gRPC-Web trailer frame of lines ("name: value\r\n" each).
func trailerFrame(lines string) []byte {
	b := []byte{0x80, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(lines)))
	return append(b, lines...)
}

// decodeChunks decodes grpc-web-text the way a client does: four characters at a time, so
// that a padded group in the middle is fine.
func decodeChunks(t *testing.T, s []byte) []byte {
	t.Helper()
	var out []byte
	for len(s) >= 4 {
		b, err := base64.StdEncoding.DecodeString(string(s[:4]))
		if err != nil {
			t.Fatalf("bad base64 group %q: %v", s[:4], err)
		}
		out = append(out, b...)
		s = s[4:]
	}
	if len(s) != 0 {
		t.Fatalf("%d characters left over", len(s))
	}
	return out
}

func newFilter(t testing.TB, cfg *Config) *Filter {
	t.Helper()
	var c Config
	c.SetDefaults()
	if cfg != nil {
		c.AllowOrigins, c.AllowCredentials = cfg.AllowOrigins, cfg.AllowCredentials
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(&c)
}

// grpcUpstream is a terminal answering like a gRPC server: the messages, then grpc-status and
// grpc-message as trailers; it records what it was sent.
type grpcUpstream struct {
	contentType     string
	body            []byte
	messages        []string
	status, message string
}

func (u *grpcUpstream) serve(c *engine.Ctx) {
	u.contentType = string(c.Request.Header.ContentType())
	if c.Request.IsBodyStream() {
		u.body, _ = io.ReadAll(c.Request.BodyStream())
	} else {
		u.body = append([]byte(nil), c.Request.Body()...)
	}
	c.Response.Header.SetContentType("application/grpc+proto")
	for _, m := range u.messages {
		c.Response.AppendBody(frame(m))
	}
	h := &c.Response.Header
	h.AddTrailer("Grpc-Status")
	h.AddTrailer("Grpc-Message")
	h.Set("Grpc-Status", u.status)
	h.Set("Grpc-Message", u.message)
}

func TestParseWebType(t *testing.T) {
	for _, tc := range []struct {
		ct     string
		mode   mode
		suffix string
	}{
		{"application/grpc-web", binaryMode, ""},
		{"application/grpc-web+proto", binaryMode, "+proto"},
		{"Application/GRPC-Web+json; charset=utf-8", binaryMode, "+json"},
		{"application/grpc-web-text", textMode, ""},
		{"application/grpc-web-text+proto", textMode, "+proto"},
		{"application/grpc", 0, ""},
		{"application/grpc+proto", 0, ""},
		{"application/grpc-webx", 0, ""},
		{"application/json", 0, ""},
		{"", 0, ""},
	} {
		m, s := parseWebType([]byte(tc.ct))
		if m != tc.mode || string(s) != tc.suffix {
			t.Errorf("%q: mode %d suffix %q, want %d %q", tc.ct, m, s, tc.mode, tc.suffix)
		}
	}
}

func TestUnaryBinary(t *testing.T) {
	f := newFilter(t, nil)
	req := frame("hello")
	c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web+proto", "X-Grpc-Web", "1")
	c.Request.SetBody(req)
	up := &grpcUpstream{messages: []string{"world"}, status: "0", message: "ok"}
	enginetest.Serve(c, up.serve, f)
	if up.contentType != "application/grpc+proto" {
		t.Errorf("upstream got Content-Type %q, want application/grpc+proto", up.contentType)
	}
	if !bytes.Equal(up.body, req) {
		t.Errorf("upstream got body %q, want %q", up.body, req)
	}
	if ct := string(c.Response.Header.ContentType()); ct != "application/grpc-web+proto" {
		t.Errorf("response Content-Type %q", ct)
	}
	want := append(frame("world"), trailerFrame("grpc-status: 0\r\ngrpc-message: ok\r\n")...)
	if diff := cmp.Diff(want, c.Response.Body()); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	assertNoTrailers(t, c)
	if code, ok := engine.GRPCStatusOf(c); !ok || code != 0 {
		t.Errorf("GRPCStatusOf = %d, %v after the trailers went into the body; want 0, true", code, ok)
	}
	if ct := string(c.Request.Header.ContentType()); ct != "application/grpc-web+proto" {
		t.Errorf("request Content-Type after the response phase %q, want the client's", ct)
	}
}

// assertNoTrailers checks that the trailers left the header: what fasthttp writes carries no
// Trailer header, no grpc-status field and no trailer section.
func assertNoTrailers(t *testing.T, c *engine.Ctx) {
	t.Helper()
	for range c.Response.Header.Trailers() {
		t.Errorf("trailers still announced: %q", c.Response.Header.Peek("Trailer"))
		break
	}
	if v := c.Response.Header.Peek("Grpc-Status"); v != nil {
		t.Errorf("grpc-status still in the header: %q", v)
	}
}

func TestUnaryText(t *testing.T) {
	f := newFilter(t, nil)
	msg1, msg2 := frame("ab"), frame("cde") // 7 and 8 bytes: both encodings end in padding
	body := base64.StdEncoding.EncodeToString(msg1) + base64.StdEncoding.EncodeToString(msg2)
	if !strings.Contains(body[:len(body)-4], "=") {
		t.Fatal("test wants padding in the middle")
	}
	c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web-text", "Accept", "application/grpc-web-text")
	c.Request.SetBodyString(body)
	up := &grpcUpstream{messages: []string{"x", "yz"}, status: "14"}
	enginetest.Serve(c, up.serve, f)
	if up.contentType != "application/grpc" {
		t.Errorf("upstream Content-Type %q", up.contentType)
	}
	if want := append(msg1, msg2...); !bytes.Equal(up.body, want) {
		t.Errorf("upstream got body %q, want %q", up.body, want)
	}
	if n := c.Request.Header.ContentLength(); n != len(msg1)+len(msg2) {
		t.Errorf("upstream Content-Length %d", n)
	}
	if ct := string(c.Response.Header.ContentType()); ct != "application/grpc-web-text+proto" {
		t.Errorf("response Content-Type %q", ct)
	}
	want := append(append(frame("x"), frame("yz")...), trailerFrame("grpc-status: 14\r\ngrpc-message: \r\n")...)
	if diff := cmp.Diff(want, decodeChunks(t, c.Response.Body())); diff != "" {
		t.Errorf("decoded body (-want +got):\n%s", diff)
	}
	assertNoTrailers(t, c)
	if code, ok := engine.GRPCStatusOf(c); !ok || code != 14 {
		t.Errorf("GRPCStatusOf = %d, %v; want 14, true", code, ok)
	}
}

func TestMalformedTextBody(t *testing.T) {
	f := newFilter(t, nil)
	for _, body := range []string{"AAAAAAE", "AA=AAAAB", "!!!!"} {
		c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web-text")
		c.Request.SetBodyString(body)
		called := false
		enginetest.Serve(c, func(c *engine.Ctx) { called = true }, f)
		if called || c.Response.StatusCode() != 400 {
			t.Errorf("%q: upstream called %v, status %d; want 400 without the upstream", body, called, c.Response.StatusCode())
		}
	}
}

func TestTrailersOnly(t *testing.T) {
	f := newFilter(t, nil)
	for _, ct := range []string{"application/grpc-web", "application/grpc-web-text"} {
		c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Missing", "Content-Type", ct)
		enginetest.Serve(c, func(c *engine.Ctx) {
			c.Response.Header.SetContentType("application/grpc")
			c.Response.Header.Set("Grpc-Status", "12")
			c.Response.Header.Set("Grpc-Message", "unknown method")
		}, f)
		h := &c.Response.Header
		if string(h.ContentType()) != ct || string(h.Peek("Grpc-Status")) != "12" || string(h.Peek("Grpc-Message")) != "unknown method" {
			t.Errorf("%s: headers %q", ct, h.Header())
		}
		if len(c.Response.Body()) != 0 {
			t.Errorf("%s: body %q, want none", ct, c.Response.Body())
		}
	}
}

// upstreamStream is a streamed upstream body as the balancer gives it: the frames, then, when
// the body ends, the trailers land in the response header.
type upstreamStream struct {
	r      io.Reader
	hdr    *fasthttp.ResponseHeader
	closed int
}

func (s *upstreamStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.hdr.AddTrailer("Grpc-Status")
		s.hdr.Set("Grpc-Status", "0")
		s.hdr.AddTrailer("X-Count")
		s.hdr.Add("X-Count", "1")
		s.hdr.Add("X-Count", "2")
	}
	return n, err
}

func (s *upstreamStream) Close() error { s.closed++; return nil }

func TestServerStreaming(t *testing.T) {
	f := newFilter(t, nil)
	for _, tc := range []struct{ ct, wantCT string }{
		{"application/grpc-web+proto", "application/grpc-web"},
		{"application/grpc-web-text+proto", "application/grpc-web-text"},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Stream", "Content-Type", tc.ct)
			msgs := append(append(frame("one"), frame("two")...), frame("three")...)
			var up *upstreamStream
			enginetest.Serve(c, func(c *engine.Ctx) {
				c.Response.Header.SetContentType("application/grpc")
				// One message per read, as they would arrive.
				up = &upstreamStream{r: io.MultiReader(bytes.NewReader(msgs[:8]), bytes.NewReader(msgs[8:16]), bytes.NewReader(msgs[16:])), hdr: &c.Response.Header}
				c.Response.SetBodyStream(up, -1)
			}, f)
			if !c.Response.IsBodyStream() {
				t.Fatal("response no longer streamed")
			}
			if up.closed != 0 {
				t.Fatal("the upstream stream was closed when wrapped")
			}
			if ct := string(c.Response.Header.ContentType()); ct != tc.wantCT {
				t.Errorf("Content-Type %q, want %q", ct, tc.wantCT)
			}
			// Write the response as the server does and read it back as a client.
			var wire bytes.Buffer
			bw := bufio.NewWriter(&wire)
			if err := c.Response.Write(bw); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
			if up.closed != 1 {
				t.Errorf("upstream stream closed %d times, want 1", up.closed)
			}
			raw := wire.String()
			if strings.Contains(strings.ToLower(raw), "trailer:") || strings.Contains(strings.ToLower(raw), "\r\ngrpc-status") {
				t.Errorf("HTTP trailers still sent:\n%q", raw)
			}
			var got fasthttp.Response
			if err := got.Read(bufio.NewReader(&wire)); err != nil {
				t.Fatal(err)
			}
			body := got.Body()
			if tc.wantCT == "application/grpc-web-text" {
				body = decodeChunks(t, body)
			}
			want := append(msgs, trailerFrame("grpc-status: 0\r\nx-count: 1\r\nx-count: 2\r\n")...)
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStreamedTextRequest: a streamed grpc-web-text request body reaches the upstream decoded,
// read in pieces that split base64 groups.
func TestStreamedTextRequest(t *testing.T) {
	f := newFilter(t, nil)
	msgs := append(frame("first"), frame("second message")...)
	enc := base64.StdEncoding.EncodeToString(msgs[:10]) + base64.StdEncoding.EncodeToString(msgs[10:])
	c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web-text")
	c.Request.SetBodyStream(&oneByteReader{s: enc}, len(enc))
	up := &grpcUpstream{status: "0"}
	enginetest.Serve(c, up.serve, f)
	if !bytes.Equal(up.body, msgs) {
		t.Errorf("upstream got %q, want %q", up.body, msgs)
	}

	c = enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web-text")
	c.Request.SetBodyStream(&oneByteReader{s: enc[:len(enc)-1]}, -1)
	var err error
	enginetest.Serve(c, func(c *engine.Ctx) { _, err = io.ReadAll(c.Request.BodyStream()) }, f)
	if err == nil {
		t.Error("a body cut inside a base64 group read without an error")
	}
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

// TestLocalReply: a gateway answer that is not gRPC (a filter's 401, the balancer's 503) is
// left to the server's gRPC status mapping, with the CORS headers so the page can read it.
func TestLocalReply(t *testing.T) {
	f := newFilter(t, &Config{AllowOrigins: []string{"https://app.example"}})
	c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web", "Origin", "https://app.example")
	enginetest.Serve(c, func(c *engine.Ctx) { c.Fail(503, io.ErrUnexpectedEOF) }, f)
	if c.Response.StatusCode() != 503 || string(c.Response.Header.Peek("Access-Control-Allow-Origin")) != "https://app.example" {
		t.Errorf("got %q", c.Response.Header.Header())
	}
	// The server's mapping reads the client's content type from the request.
	if ct := string(c.Request.Header.ContentType()); ct != "application/grpc-web" {
		t.Errorf("request Content-Type after the response phase %q, want the client's", ct)
	}
}

func TestPassThrough(t *testing.T) {
	f := newFilter(t, &Config{AllowOrigins: []string{"*"}})
	c := enginetest.NewCtx(t, "POST", "/x", "Content-Type", "application/json", "Origin", "https://a.example")
	c.Request.SetBodyString(`{"a":1}`)
	var ct string
	enginetest.Serve(c, func(c *engine.Ctx) { ct = string(c.Request.Header.ContentType()); enginetest.OK(c) }, f)
	if ct != "application/json" || string(c.Response.Body()) != "ok" || c.Response.Header.Peek("Access-Control-Allow-Origin") != nil {
		t.Errorf("a JSON request was changed: upstream saw %q, response %q", ct, c.Response.Header.Header())
	}
}

func TestPreflight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		headers []string
		status  int // 0: passed to the next stage
		want    map[string]string
	}{
		{"cors off", Config{}, []string{"Origin", "https://a.example", "Access-Control-Request-Method", "POST"}, 0, nil},
		{"plain OPTIONS", Config{AllowOrigins: []string{"*"}}, []string{"Origin", "https://a.example"}, 0, nil},
		{"any origin", Config{AllowOrigins: []string{"*"}}, []string{"Origin", "https://a.example", "Access-Control-Request-Method", "POST"}, 204, map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "POST",
			"Access-Control-Allow-Headers": "content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization",
			"Access-Control-Max-Age":       "600",
		}},
		{"listed origin", Config{AllowOrigins: []string{"https://App.example"}, AllowCredentials: true}, []string{"Origin", "https://app.example", "Access-Control-Request-Method", "POST"}, 204, map[string]string{
			"Access-Control-Allow-Origin":      "https://app.example",
			"Access-Control-Allow-Credentials": "true",
			"Vary":                             "Origin",
		}},
		{"other origin", Config{AllowOrigins: []string{"https://app.example"}}, []string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST"}, 403, map[string]string{
			"Access-Control-Allow-Origin": "",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, &tc.cfg)
			c := enginetest.NewCtx(t, "OPTIONS", "/pkg.Svc/Call", tc.headers...)
			next := false
			enginetest.Serve(c, func(c *engine.Ctx) { next = true; enginetest.OK(c) }, f)
			if tc.status == 0 {
				if !next {
					t.Error("not passed on")
				}
				return
			}
			if next || c.Response.StatusCode() != tc.status {
				t.Fatalf("passed on %v, status %d; want %d", next, c.Response.StatusCode(), tc.status)
			}
			for k, v := range tc.want {
				if got := string(c.Response.Header.Peek(k)); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestCORSResponseHeaders(t *testing.T) {
	f := newFilter(t, &Config{AllowOrigins: []string{"https://app.example"}})
	for _, tc := range []struct{ origin, allow string }{{"https://app.example", "https://app.example"}, {"https://evil.example", ""}} {
		c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web", "Origin", tc.origin)
		up := &grpcUpstream{status: "0"}
		enginetest.Serve(c, up.serve, f)
		h := &c.Response.Header
		if got := string(h.Peek("Access-Control-Allow-Origin")); got != tc.allow {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", tc.origin, got, tc.allow)
		}
		if tc.allow != "" && string(h.Peek("Access-Control-Expose-Headers")) != "grpc-status, grpc-message, grpc-status-details-bin" {
			t.Errorf("Access-Control-Expose-Headers %q", h.Peek("Access-Control-Expose-Headers"))
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string // "" valid
	}{
		{Config{AllowOrigins: []string{"*"}}, ""},
		{Config{AllowOrigins: []string{"https://a.example", "http://localhost:3000"}, AllowCredentials: true}, ""},
		{Config{AllowOrigins: []string{"https://a.example/"}}, "allow_origins"},
		{Config{AllowOrigins: []string{"https://a.example/app"}}, "allow_origins"},
		{Config{AllowOrigins: []string{"https://*.example"}}, "allow_origins"},
		{Config{AllowOrigins: []string{"a.example"}}, "allow_origins"},
		{Config{AllowOrigins: []string{"*"}, AllowCredentials: true}, "allow_credentials"},
		{Config{AllowHeaders: []string{"bad header"}}, "allow_headers"},
		{Config{ExposeHeaders: []string{"x:y"}}, "expose_headers"},
		{Config{MaxAge: engine.Duration(48 * time.Hour)}, "max_age"},
	} {
		err := tc.cfg.Validate()
		errs := engine.FieldErrors(err)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.cfg, err)
			}
			continue
		}
		if len(errs) != 1 {
			t.Errorf("%+v: errors %v, want one on %s", tc.cfg, errs, tc.field)
			continue
		}
		if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want it on %s", tc.cfg, errs[0], tc.field)
		}
	}
}

// TestPassThroughAllocs: requests that are not gRPC-Web, and preflights, allocate nothing.
func TestPassThroughAllocs(t *testing.T) {
	f := newFilter(t, &Config{AllowOrigins: []string{"https://app.example"}})
	c := enginetest.NewCtx(t, "POST", "/x", "Content-Type", "application/json", "Origin", "https://app.example")
	if n := testing.AllocsPerRun(1000, func() {
		f.OnRequest(c)
		f.OnResponse(c)
	}); n != 0 {
		t.Errorf("pass-through allocates %v per request, want 0", n)
	}
	p := enginetest.NewCtx(t, "OPTIONS", "/x", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if n := testing.AllocsPerRun(1000, func() {
		p.Response.Reset()
		f.OnRequest(p)
		f.OnResponse(p)
	}); n != 0 {
		t.Errorf("a preflight allocates %v, want 0", n)
	}
}

// TestUnaryAllocs: translating a held unary call allocates nothing once the buffers are warm.
func TestUnaryAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	f := newFilter(t, nil)
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text"} {
		c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", ct)
		body := frame("hello")
		if ct == "application/grpc-web-text" {
			body = []byte(base64.StdEncoding.EncodeToString(body))
		}
		n := testing.AllocsPerRun(1000, func() { unaryRound(c, f, ct, body) })
		if n != 0 {
			t.Errorf("%s: a unary call allocates %v, want 0", ct, n)
		}
	}
}

func unaryRound(c *engine.Ctx, f *Filter, ct string, body []byte) {
	c.Request.Header.SetContentType(ct)
	c.Request.SetBody(body)
	c.Response.Reset()
	f.OnRequest(c)
	h := &c.Response.Header
	h.SetContentType("application/grpc")
	c.Response.AppendBody(c.Request.Body())
	_ = h.AddTrailer("Grpc-Status")
	h.Set("Grpc-Status", "0")
	f.OnResponse(c)
}

func BenchmarkPassThrough(b *testing.B) {
	f := newFilter(b, &Config{AllowOrigins: []string{"https://app.example"}})
	c := enginetest.NewCtx(b, "POST", "/x", "Content-Type", "application/json", "Origin", "https://app.example")
	b.ReportAllocs()
	for b.Loop() {
		f.OnRequest(c)
		f.OnResponse(c)
	}
}

func BenchmarkUnary(b *testing.B) {
	f := newFilter(b, nil)
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text"} {
		b.Run(ct, func(b *testing.B) {
			c := enginetest.NewCtx(b, "POST", "/pkg.Svc/Call", "Content-Type", ct)
			body := frame(strings.Repeat("m", 64))
			if ct == "application/grpc-web-text" {
				body = []byte(base64.StdEncoding.EncodeToString(body))
			}
			b.ReportAllocs()
			for b.Loop() {
				unaryRound(c, f, ct, body)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	if err := (&Config{AllowOrigins: []string{"https://a.example"}}).Warnings(); err != nil {
		t.Errorf("listed origins warned: %v", err)
	}
	err := (&Config{AllowOrigins: []string{"*"}}).Warnings()
	if fe, ok := engine.AsFieldError(err); !ok || fe.Field != "allow_origins" {
		t.Errorf("\"*\": warning %v, want one on allow_origins", err)
	}
}

// TestRawBody: a gRPC response whose body was set without a copy (SetBodyRaw) keeps its
// messages when the trailer frame is added.
func TestRawBody(t *testing.T) {
	f := newFilter(t, nil)
	c := enginetest.NewCtx(t, "POST", "/pkg.Svc/Call", "Content-Type", "application/grpc-web")
	msg := frame("raw")
	enginetest.Serve(c, func(c *engine.Ctx) {
		c.Response.Header.SetContentType("application/grpc")
		c.Response.SetBodyRaw(msg)
		_ = c.Response.Header.AddTrailer("Grpc-Status")
		c.Response.Header.Set("Grpc-Status", "0")
	}, f)
	want := append(frame("raw"), trailerFrame("grpc-status: 0\r\n")...)
	if diff := cmp.Diff(want, c.Response.Body()); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}
