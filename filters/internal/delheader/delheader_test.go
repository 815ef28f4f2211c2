package delheader

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// names are removed from every request of TestDelMatchesDelBytes: case variants, names stored
// twice, in the trailer section, absent, fasthttp's special headers and names that are not
// tokens (which fasthttp does not normalise).
var names = []string{
	"Authorization", "authorization", "X-API-Key", "x-api-key", "X-Dup", "x-fault-test",
	"x-missing", "x_under", "Referer", "x-set", "x-lower",
	"Host", "Cookie", "Content-Type", "Content-Length", "Connection", "User-Agent", "Trailer",
	"foo bar", "-",
}

var requests = []string{
	"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ=\r\n\r\n",
	"GET /a HTTP/1.1\r\nhost: Example.COM\r\nauthorization: Basic Zm9vOmJhcg==\r\nx-api-key: k1\r\nX-Dup: a\r\n" +
		"x-dup: b\r\nAUTHORIZATION: Bearer t\r\ncookie: a=b\r\ncontent-type: text/plain\r\nuser-agent: ua/1\r\n" +
		"x_under: u\r\nReferer: /r\r\nX-API-KEY: k2\r\n\r\n",
	"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Fault-Test, X-Api-Key\r\nAuthorization: a\r\n\r\n" +
		"1\r\na\r\n0\r\nX-Fault-Test: t\r\nx-api-key: in-trailer\r\n\r\n",
	"GET / HTTP/1.0\r\nX-Fault-Test: yes\r\nfoo bar: spaced\r\n\r\n",
}

func read(t *testing.T, raw string) *fasthttp.Request {
	t.Helper()
	r := new(fasthttp.Request)
	if err := r.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("reading %q: %v", raw, err)
	}
	return r
}

// TestDelMatchesDelBytes: removing a name with Name.Del leaves a request exactly as DelBytes
// does (its serialised header and trailer, and what a lookup of the name answers), on parsed
// requests and on headers set through the API afterwards, twice in a row (the second finds
// nothing), and on a request reused after Reset.
func TestDelMatchesDelBytes(t *testing.T) {
	for _, raw := range requests {
		for _, name := range names {
			want, got := read(t, raw), read(t, raw)
			for _, r := range []*fasthttp.Request{want, got} {
				r.Header.Set("x-set", "s")
				r.Header.Add("Authorization", "added")
				r.Header.SetCanonical([]byte("x-lower"), []byte("l"))
			}
			n := New(name)
			for range 2 {
				want.Header.DelBytes([]byte(name))
				n.Del(&got.Header)
				if w, g := want.Header.String(), got.Header.String(); w != g {
					t.Fatalf("%q from %q:\nDelBytes left %q\nDel left      %q", name, raw, w, g)
				}
				if w, g := string(want.Header.TrailerHeader()), string(got.Header.TrailerHeader()); w != g {
					t.Fatalf("%q from %q: trailers %q and %q", name, raw, w, g)
				}
				// (fasthttp answers Host from the request line, and so on: special names aside.)
				if !n.special && (got.Header.Peek(name) != nil || len(got.Header.PeekAll(name)) != 0) {
					t.Fatalf("%q from %q: still there after Del", name, raw)
				}
			}
			got.Reset()
			if err := got.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatal(err)
			}
			want = read(t, raw)
			want.Header.DelBytes([]byte(name))
			n.Del(&got.Header)
			if w, g := want.Header.String(), got.Header.String(); w != g {
				t.Fatalf("%q from %q after Reset:\nDelBytes left %q\nDel left      %q", name, raw, w, g)
			}
		}
	}
}

func TestDelAllocatesNothing(t *testing.T) {
	r := read(t, requests[2])
	auth := []byte("Basic Zm9vOmJhcg==")
	n := New("Authorization")
	if a := testing.AllocsPerRun(100, func() {
		r.Header.SetBytesV("Authorization", auth)
		n.Del(&r.Header)
	}); a != 0 {
		t.Errorf("%v allocations per removal", a)
	}
}

func BenchmarkDel(b *testing.B) {
	r := new(fasthttp.Request)
	r.Header.SetHost("h")
	auth := []byte("Basic Zm9vOmJhcg==")
	name := []byte("Authorization")
	b.Run("DelBytes", func(b *testing.B) {
		for b.Loop() {
			r.Header.SetBytesV("Authorization", auth)
			wasOff := r.Header.DisableNormalizing()
			r.Header.DelBytes(name)
			if !wasOff {
				r.Header.EnableNormalizing()
			}
		}
	})
	b.Run("Del", func(b *testing.B) {
		n := New("Authorization")
		for b.Loop() {
			r.Header.SetBytesV("Authorization", auth)
			n.Del(&r.Header)
		}
	})
}
