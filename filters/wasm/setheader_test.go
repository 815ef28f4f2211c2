package wasm

import (
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"
)

// headerDump lists every field as fasthttp's exported view shows it, and the serialized form.
func headerDump(all func(yield func(k, v []byte) bool), s string) string {
	out := ""
	for k, v := range all {
		out += fmt.Sprintf("%s: %s\n", k, v)
	}
	return out + "--\n" + s
}

// TestSetHeaderMatchesSetCanonical sets names fasthttp keeps apart and ordinary ones, new and
// existing (twice, a second field of the name), on requests and responses with and without
// announced trailers, through setheader.go and through SetCanonical, and requires the same
// header either way, for every name a second time on the same cache (the decision taken).
func TestSetHeaderMatchesSetCanonical(t *testing.T) {
	names := []string{"x-wasm", "X-Id", "content-type", "Connection", "cookie", "host", "user-agent",
		"set-cookie", "server", "transfer-encoding", "trailer", "content-length", "date",
		"content-encoding", "x-t", "authorization", "expect"}
	values := []string{"1", "close", "keep-alive", "text/plain", "a=b", "", "12", "gzip, br", "v\twith tab"}
	var nc nameCache
	for round := range 2 {
		for _, trailer := range []bool{false, true} {
			for _, name := range names {
				for _, value := range values {
					var want, got fasthttp.RequestHeader
					for _, h := range []*fasthttp.RequestHeader{&want, &got} {
						h.SetMethod("POST")
						h.SetRequestURI("/p")
						h.Set("X-Id", "old")
						h.Add("X-Wasm", "a")
						h.Add("X-Wasm", "b")
						if trailer {
							if err := h.SetTrailer("X-T"); err != nil {
								t.Fatal(err)
							}
						}
					}
					e := nc.lookup([]byte(name))
					if e == nil {
						t.Fatalf("%q is not a valid name", name)
					}
					want.SetCanonical(e.canon, []byte(value))
					nc.setRequestHeader(&got, e, []byte(value))
					if w, g := headerDump(want.All(), want.String()), headerDump(got.All(), got.String()); w != g {
						t.Errorf("round %d, trailer %v: request %s: %q: got\n%s\nwant\n%s", round, trailer, name, value, g, w)
					}

					var wantR, gotR fasthttp.ResponseHeader
					for _, h := range []*fasthttp.ResponseHeader{&wantR, &gotR} {
						h.Set("X-Id", "old")
						h.Add("X-Wasm", "a")
						h.Add("X-Wasm", "b")
						if trailer {
							if err := h.SetTrailer("X-T"); err != nil {
								t.Fatal(err)
							}
						}
					}
					e = nc.lookup([]byte(name))
					wantR.SetCanonical(e.canon, []byte(value))
					nc.setResponseHeader(&gotR, e, []byte(value))
					if w, g := headerDump(wantR.All(), wantR.String()), headerDump(gotR.All(), gotR.String()); w != g {
						t.Errorf("round %d, trailer %v: response %s: %q: got\n%s\nwant\n%s", round, trailer, name, value, g, w)
					}
				}
			}
		}
	}
	// An ordinary name takes the direct path, Connection does not.
	for name, want := range map[string]uint8{"x-wasm": plainRequest | plainResponse, "connection": 0, "content-type": 0} {
		var nc nameCache
		var req fasthttp.RequestHeader
		var resp fasthttp.ResponseHeader
		e := nc.lookup([]byte(name))
		nc.setRequestHeader(&req, e, []byte("1"))
		nc.setResponseHeader(&resp, e, []byte("1"))
		if e.plain != want || e.plainKnown != plainRequest|plainResponse {
			t.Errorf("%s: plain = %b (known %b), want %b", name, e.plain, e.plainKnown, want)
		}
	}
}
