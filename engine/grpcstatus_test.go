package engine

import (
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestGRPCStatusForHTTP(t *testing.T) {
	// The table of issue 28 (Sluice's mapping, not Envoy's).
	want := map[int]int{
		401: GRPCUnauthenticated, 403: GRPCPermissionDenied,
		429: GRPCResourceExhausted, 413: GRPCResourceExhausted, 431: GRPCResourceExhausted,
		502: GRPCUnavailable, 503: GRPCUnavailable, 504: GRPCDeadlineExceeded,
		404: GRPCUnimplemented, 400: GRPCInternal, 405: GRPCInternal, 409: GRPCInternal, 499: GRPCInternal,
		500: GRPCUnknown, 501: GRPCUnknown, 505: GRPCUnknown, 200: GRPCUnknown, 302: GRPCUnknown,
	}
	for status, code := range want {
		if got := GRPCStatusForHTTP(status); got != code {
			t.Errorf("GRPCStatusForHTTP(%d) = %d, want %d", status, got, code)
		}
	}
}

func TestGRPCKindOf(t *testing.T) {
	for ct, want := range map[string]grpcKind{
		"":                                notGRPC,
		"application/json":                notGRPC,
		"application/grpcx":               notGRPC,
		"application/grp":                 notGRPC,
		"application/grpc":                grpcNative,
		"application/grpc+proto":          grpcNative,
		"application/grpc; charset=utf-8": grpcNative,
		"application/grpc-web":            grpcWeb,
		"application/grpc-web+proto":      grpcWeb,
		"application/grpc-web-text":       grpcWebText,
		"application/grpc-web-text+proto": grpcWebText,
	} {
		if got := grpcKindOf([]byte(ct)); got != want {
			t.Errorf("grpcKindOf(%q) = %d, want %d", ct, got, want)
		}
	}
}

func TestAppendGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"Unauthorized":  "Unauthorized",
		"100% sure":     "100%25 sure",
		"line\r\nbreak": "line%0D%0Abreak",
		"caf\u00e9":     "caf%C3%A9",
		"\x00\x7f~ ":    "%00%7F~ ",
		"":              "",
	} {
		var buf [64]byte
		if got := string(appendGRPCMessage(buf[:0], []byte(in))); got != want {
			t.Errorf("appendGRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
	// Bounded by the buffer, never cutting an escape in half.
	var buf [10]byte
	got := string(appendGRPCMessage(buf[:0], []byte("%%%%%%%%")))
	if got != "%25%25%25" {
		t.Errorf("bounded: %q", got)
	}
}

func newGRPCCtx(t *testing.T, reqCT string) *Ctx {
	t.Helper()
	fc := new(fasthttp.RequestCtx)
	fc.Request.Header.SetMethod("POST")
	fc.Request.SetRequestURI("/pkg.Svc/Method")
	if reqCT != "" {
		fc.Request.Header.SetContentType(reqCT)
	}
	c := AcquireCtx(fc)
	t.Cleanup(func() { ReleaseCtx(c) })
	return c
}

func TestGRPCAnswer(t *testing.T) {
	for _, tc := range []struct {
		reqCT, wantCT string
		status        int
		code          string
		msg           string
	}{
		{"application/grpc", "application/grpc", 401, "16", "Unauthorized"},
		{"application/grpc+proto", "application/grpc", 429, "8", "Too Many Requests"},
		{"application/grpc-web+proto", "application/grpc-web", 503, "14", "Service Unavailable"},
		{"application/grpc-web-text", "application/grpc-web-text", 504, "4", "Gateway Timeout"},
		{"application/grpc", "application/grpc", 404, "12", "Not Found"},
	} {
		c := newGRPCCtx(t, tc.reqCT)
		c.Fail(tc.status, nil)
		c.Response.Header.Set("Retry-After", "1")
		if got := grpcAnswer(c); strconv.Itoa(got) != tc.code {
			t.Errorf("%s %d: code %d, want %s", tc.reqCT, tc.status, got, tc.code)
		}
		r := c.Response
		if r.StatusCode() != 200 || string(r.Header.ContentType()) != tc.wantCT || len(r.Body()) != 0 ||
			string(r.Header.Peek("grpc-status")) != tc.code || string(r.Header.Peek("grpc-message")) != tc.msg ||
			string(r.Header.Peek("Retry-After")) != "1" {
			t.Errorf("%s %d: got\n%s", tc.reqCT, tc.status, r.String())
		}
	}
}

func TestGRPCAnswerLeavesOthers(t *testing.T) {
	// Not a gRPC request: untouched.
	c := newGRPCCtx(t, "application/json")
	c.Fail(401, nil)
	if grpcAnswer(c) != -1 || c.Response.StatusCode() != 401 {
		t.Errorf("a JSON request's 401 was changed: %s", c.Response.String())
	}
	// The upstream's own gRPC response (an error in trailers-only form, or OK): untouched.
	c = newGRPCCtx(t, "application/grpc")
	c.Response.Header.SetContentType("application/grpc")
	c.Response.Header.Set("grpc-status", "5")
	c.Response.Header.Set("grpc-message", "not found")
	if grpcAnswer(c) != -1 || string(c.Response.Header.Peek("grpc-status")) != "5" {
		t.Errorf("an upstream gRPC response was changed: %s", c.Response.String())
	}
}

func TestGRPCAnswerZeroAllocs(t *testing.T) {
	c := newGRPCCtx(t, "application/json")
	c.Response.SetStatusCode(200)
	if n := testing.AllocsPerRun(1000, func() { grpcAnswer(c) }); n != 0 {
		t.Errorf("a non-gRPC request: %v allocations, want 0", n)
	}
}
