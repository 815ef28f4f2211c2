package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestPresetCookieMatchesSetCanonical: a preset Set-Cookie leaves a response exactly as
// SetCanonical("Set-Cookie", value) leaves it, whatever the response held before (the upstream's
// own cookies, one of the same name, a header reused from a response with more or longer
// cookies): the same bytes on the wire, the same fields for filters and for HTTP/2.
func TestPresetCookieMatchesSetCanonical(t *testing.T) {
	values := []string{
		"canary=v1; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax",
		"c=a-much-longer-upstream-name-than-most; Path=/; Max-Age=1; HttpOnly; SameSite=Lax",
		"x=y",
	}
	states := []struct {
		name    string
		prepare func(h *fasthttp.ResponseHeader)
	}{
		{"empty", func(h *fasthttp.ResponseHeader) {}},
		{"upstream cookies", func(h *fasthttp.ResponseHeader) {
			h.Add("Set-Cookie", "session=abc; Path=/; Secure")
			h.Add("Set-Cookie", "canary=theirs")
			h.Set("Content-Type", "text/plain")
		}},
		{"reused after reset", func(h *fasthttp.ResponseHeader) {
			for i := range 5 {
				h.Add("Set-Cookie", fmt.Sprintf("old%d=%s; Path=/some/long/path", i, bytes.Repeat([]byte("v"), 80)))
			}
			h.Reset()
			h.Add("Set-Cookie", "a=1")
		}},
	}
	for _, v := range values {
		p := newPresetCookie([]byte(v))
		for _, st := range states {
			var want, got fasthttp.ResponseHeader
			st.prepare(&want)
			st.prepare(&got)
			want.SetCanonical(hdrSetCookie, []byte(v))
			p.appendTo(&got)
			if w, g := want.Header(), got.Header(); !bytes.Equal(w, g) {
				t.Errorf("%s, %q:\n got %q\nwant %q", st.name, v, g, w)
			}
			if w, g := fields(&want), fields(&got); w != g {
				t.Errorf("%s, %q: fields\n got %s\nwant %s", st.name, v, g, w)
			}
			// A filter's response phase may remove it, as it would remove SetCanonical's.
			want.DelCookie("canary")
			got.DelCookie("canary")
			if w, g := want.Header(), got.Header(); !bytes.Equal(w, g) {
				t.Errorf("%s, %q, after DelCookie:\n got %q\nwant %q", st.name, v, g, w)
			}
		}
	}
}

// fields lists h's fields as All and Cookies yield them (the HTTP/2 writer and the cache read these).
func fields(h *fasthttp.ResponseHeader) string {
	var b bytes.Buffer
	for k, v := range h.All() {
		fmt.Fprintf(&b, "%s: %s | ", k, v)
	}
	for k, v := range h.Cookies() {
		fmt.Fprintf(&b, "cookie %s = %s | ", k, v)
	}
	return b.String()
}

func TestPresetCookieAllocs(t *testing.T) {
	p := newPresetCookie([]byte("canary=v1; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"))
	var h fasthttp.ResponseHeader
	p.appendTo(&h) // the list's room and the entry's buffers
	if n := testing.AllocsPerRun(200, func() {
		h.Reset()
		p.appendTo(&h)
	}); n != 0 {
		t.Errorf("%v allocations per Set-Cookie, want 0", n)
	}
}

// TestPresetCookieReusedEntries: one response header serving a run of responses, as a
// connection's does, the upstream's own Set-Cookie fields (parsed off the wire, as the balancer
// reads them, so that fasthttp reuses the entries the preset cookie filled, growing or moving
// their buffers) and two arms' presets in turn. Every response is as SetCanonical leaves it, and
// the presets' bytes never change (an entry's buffers are the entry's own).
func TestPresetCookieReusedEntries(t *testing.T) {
	values := []string{
		"canary=v1; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax",
		"canary=a-longer-upstream-name; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax",
	}
	presets := []presetCookie{newPresetCookie([]byte(values[0])), newPresetCookie([]byte(values[1]))}
	upstream := [][]string{
		nil,
		{"longer-name=v"}, // in place into the preset's entry: the name must not overrun the value
		{"canary=theirs"},
		{"a-much-longer-cookie-name=" + string(bytes.Repeat([]byte("x"), 90)), "b=2"},
		{"s=1; Path=/"},
		{"x=y", "y=z", "canary=upstream; Path=/"},
	}
	var got, want fasthttp.ResponseHeader
	for i := range 200 {
		raw := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
		for _, c := range upstream[i%len(upstream)] {
			raw += "Set-Cookie: " + c + "\r\n"
		}
		raw += "\r\n"
		for _, h := range []*fasthttp.ResponseHeader{&got, &want} {
			if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatal(err)
			}
		}
		arm := (i / len(upstream)) % 2
		presets[arm].appendTo(&got)
		want.SetCanonical(hdrSetCookie, []byte(values[arm]))
		if w, g := want.Header(), got.Header(); !bytes.Equal(w, g) {
			t.Fatalf("response %d:\n got %q\nwant %q", i, g, w)
		}
		if w, g := fields(&want), fields(&got); w != g {
			t.Fatalf("response %d: fields\n got %s\nwant %s", i, g, w)
		}
	}
	for i, p := range presets {
		if got := string(p.name) + "|" + string(p.value); got != "canary|"+values[i] {
			t.Errorf("preset %d changed: %q", i, got)
		}
	}
}
