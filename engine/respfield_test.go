package engine

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestResponseHeaderNameAddMatchesAddBytesKV checks that Add leaves a response header exactly as
// AddBytesKV does: the header block, the trailer section and every field as All lists them, for
// ordinary and special names, on fresh and reused headers, beside the upstream's fields of the
// same name, with the name announced as a trailer, with normalising off and for values with line
// breaks.
func TestResponseHeaderNameAddMatchesAddBytesKV(t *testing.T) {
	names := []string{"RateLimit", "RateLimit-Policy", "ratelimit", "X-Custom-Field", "Content-Type",
		"content-length", "Content-Encoding", "Set-Cookie", "Server", "Date", "Trailer",
		"Transfer-Encoding", "Connection", "x y", "X-\r\nInjected"}
	values := []string{`"default";r=99999;t=1`, "", "a\r\nInjected: 1", "b\nc", "close", "gzip", "k=v; Path=/"}
	setups := map[string]func(h *fasthttp.ResponseHeader){
		"fresh": func(*fasthttp.ResponseHeader) {},
		"upstream's fields": func(h *fasthttp.ResponseHeader) {
			h.SetContentType("application/json")
			h.Add("Ratelimit", `"up";r=1;t=2`)
			h.Add("X-Custom-Field", "up")
			h.Add("Set-Cookie", "a=b")
		},
		"reused": func(h *fasthttp.ResponseHeader) {
			for _, k := range []string{"A", "B", "C", "D"} {
				h.Add("X-"+k, "value-"+k)
			}
			h.Reset()
			h.Add("X-E", "e")
		},
		"announced trailer": func(h *fasthttp.ResponseHeader) {
			if err := h.SetTrailer("RateLimit, X-Custom-Field"); err != nil {
				t.Fatal(err)
			}
		},
		"other trailer": func(h *fasthttp.ResponseHeader) {
			if err := h.SetTrailer("X-Other"); err != nil {
				t.Fatal(err)
			}
		},
		"normalising off": func(h *fasthttp.ResponseHeader) { h.DisableNormalizing() },
	}
	for setupName, setup := range setups {
		for _, name := range names {
			n := NewResponseHeaderName(name)
			for _, v := range values {
				var want, got fasthttp.ResponseHeader
				setup(&want)
				setup(&got)
				want.AddBytesKV([]byte(name), []byte(v))
				n.Add(&got, []byte(v))
				// Twice: the second field of the same name, in an entry Add may reuse.
				want.AddBytesKV([]byte(name), []byte(v+"2"))
				n.Add(&got, []byte(v+"2"))
				// And the same through a fixed field.
				want.AddBytesKV([]byte(name), []byte(v))
				fixed := NewResponseField(name, v)
				fixed.AddTo(&got)
				// And written in place (AddValue: for values without line breaks; Add otherwise).
				if !strings.ContainsAny(v, "\r\n") {
					want.AddBytesKV([]byte(name), []byte(v+"3"))
					if p := n.AddValue(&got); p != nil {
						*p = append(append(*p, v...), '3')
					} else {
						n.Add(&got, []byte(v+"3"))
					}
				}
				if w, g := want.String(), got.String(); w != g {
					t.Errorf("%s, %q = %q: header\n%q, want\n%q", setupName, name, v, g, w)
				}
				if w, g := string(want.TrailerHeader()), string(got.TrailerHeader()); w != g {
					t.Errorf("%s, %q = %q: trailers %q, want %q", setupName, name, v, g, w)
				}
				if w, g := respFieldList(&want), respFieldList(&got); w != g {
					t.Errorf("%s, %q = %q: fields %q, want %q", setupName, name, v, g, w)
				}
			}
		}
	}
}

func respFieldList(h *fasthttp.ResponseHeader) string {
	var s string
	for k, v := range h.All() {
		s += string(k) + ": " + string(v) + "\n"
	}
	return s
}

func TestResponseHeaderNamePlain(t *testing.T) {
	for name, plain := range map[string]bool{"RateLimit": true, "X-A": true, "Content-Type": false, "Set-Cookie": false, "Date": false, "Connection": false, "Trailer": false, "Server": false} {
		if n := NewResponseHeaderName(name); n.plain != plain {
			t.Errorf("%q: plain = %v, want %v", name, n.plain, plain)
		}
	}
	if n := NewResponseHeaderName("ratelimit-policy"); n.String() != "Ratelimit-Policy" {
		t.Errorf("name stored as %q, want fasthttp's Ratelimit-Policy", n.String())
	}
}

func TestResponseHeaderNameAddAllocatesNothing(t *testing.T) {
	n := NewResponseHeaderName("RateLimit")
	var h fasthttp.ResponseHeader
	v := []byte(`"default";r=10;t=1`)
	n.Add(&h, v)
	h.Reset()
	if a := testing.AllocsPerRun(1000, func() {
		n.Add(&h, v)
		h.Reset()
	}); a != 0 {
		t.Errorf("Add allocates %v times, want 0", a)
	}
}
