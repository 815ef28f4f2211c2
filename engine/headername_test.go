package engine

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// headerNameCases are names looked up in every request of TestHeaderNamePeekMatchesPeek: case
// variants, the headers fasthttp keeps apart from the others, absent ones, and names that are not
// tokens (which fasthttp does not normalise).
var headerNameCases = []string{
	"x-canary", "X-Canary", "X-CANARY", "x-CaNaRy",
	"Host", "host", "HOST",
	"Cookie", "cookie", "COOKIE",
	"Content-Type", "content-type", "Content-Length", "content-length",
	"Connection", "connection", "User-Agent", "user-agent",
	"Trailer", "trailer", "Transfer-Encoding", "Referer",
	"Authorization", "authorization", "x-empty", "X-Fault-Test", "x-missing",
	"x_under", "X-Dup", "x-dup", "x-lower",
	"Foo Bar", "foo bar", "bad\r\nname", "", "-", "x--y", "é",
}

var headerNameRequests = []string{
	"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"GET /a HTTP/1.1\r\nhost: Example.COM\r\nx-canary: 1\r\nX-CANARY: 2\r\nX-Dup: a\r\nx-dup: b\r\n" +
		"cookie: a=b; canary=up\r\ncontent-type: text/plain\r\nuser-agent: ua/1\r\n" +
		"authorization: Basic Zm9vOmJhcg==\r\nx-empty:\r\nx_under: u\r\nReferer: /r\r\n\r\n",
	"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\nCookie: x=1\r\nCookie: y=2\r\n\r\nabc",
	"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Fault-Test\r\nConnection: keep-alive, Upgrade\r\n\r\n" +
		"1\r\na\r\n0\r\nX-Fault-Test: t\r\n\r\n",
	"GET / HTTP/1.0\r\nX-Fault-Test: yes\r\nfoo bar: spaced\r\n\r\n",
}

func readRequest(t testing.TB, raw string) *fasthttp.Request {
	t.Helper()
	var r fasthttp.Request
	if err := r.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("reading %q: %v", raw, err)
	}
	return &r
}

// samePeek reports whether two lookups answered alike: the same bytes, and both nil or neither
// (callers tell an absent header from an empty one by nil).
func samePeek(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }

func TestHeaderNamePeekMatchesPeek(t *testing.T) {
	check := func(t *testing.T, h *fasthttp.RequestHeader) {
		t.Helper()
		for _, name := range headerNameCases {
			// Copied: Peek's result may be h's scratch space, which the next lookup reuses.
			want := append([]byte(nil), h.Peek(name)...)
			if h.Peek(name) == nil {
				want = nil
			}
			if got := NewHeaderName(name).Peek(h); !samePeek(got, want) {
				t.Errorf("%q: HeaderName.Peek = %q (nil %v), Peek = %q (nil %v)", name, got, got == nil, want, want == nil)
			}
		}
	}
	for _, raw := range headerNameRequests {
		t.Run(strings.SplitN(raw, "\r\n", 2)[0], func(t *testing.T) {
			r := readRequest(t, raw)
			check(t, &r.Header)
			// Once cookies are parsed fasthttp answers Cookie from them, not from the raw line.
			_ = r.Header.Cookie("a")
			check(t, &r.Header)
			// Headers set through the API (as the HTTP/2 server and filters do), including one
			// stored under a name fasthttp did not normalise.
			r.Header.Set("x-set", "s")
			r.Header.Add("X-Dup", "c")
			r.Header.SetCanonical([]byte("x-lower"), []byte("l"))
			r.Header.SetHost("other")
			r.Header.SetContentType("application/json")
			check(t, &r.Header)
		})
	}
}

func TestHeaderNameNormalisesOnce(t *testing.T) {
	if got := NewHeaderName("x-cAnArY").String(); got != "X-Canary" {
		t.Errorf("normalised name %q, want X-Canary", got)
	}
	if !NewHeaderName("").IsZero() || NewHeaderName("a").IsZero() || !(HeaderName{}).IsZero() {
		t.Error("IsZero: only the empty name is zero")
	}
}

func TestHeaderNamePeekAllocatesNothing(t *testing.T) {
	r := readRequest(t, headerNameRequests[1])
	for _, name := range []string{"x-canary", "host", "authorization", "x-missing", "content-type"} {
		n := NewHeaderName(name)
		if a := testing.AllocsPerRun(100, func() { _ = n.Peek(&r.Header) }); a != 0 {
			t.Errorf("%s: %v allocations per lookup", name, a)
		}
	}
}

func BenchmarkHeaderName(b *testing.B) {
	r := readRequest(b, headerNameRequests[1])
	b.Run("Peek", func(b *testing.B) {
		for b.Loop() {
			_ = r.Header.Peek("x-fault-test")
		}
	})
	b.Run("HeaderName", func(b *testing.B) {
		n := NewHeaderName("x-fault-test")
		for b.Loop() {
			_ = n.Peek(&r.Header)
		}
	})
}

// TestServerNormalisesHeaderNames guards HeaderName's premise: the server has fasthttp normalise
// request header names, so that Peek normalises the name it is given as HeaderName did.
func TestServerNormalisesHeaderNames(t *testing.T) {
	if s := testServer(t); s.srv.DisableHeaderNamesNormalizing {
		t.Fatal("the server disables header-name normalising: HeaderName.Peek would no longer answer as Peek")
	}
}
