//go:build !wasip1

package main

import (
	"encoding/json"
	"testing"

	"github.com/sluice-gateway/sluice/sdk/go/filtertest"
)

func TestRedact(t *testing.T) {
	fields := [][]byte{[]byte("password"), []byte("card")}
	for _, tc := range []struct{ in, want string }{
		{`{"user":"ann","password":"hunter2"}`, `{"user":"ann","password":"***"}`},
		{`{"a":{"card" : 4111111111111111, "x":1},"list":[{"password":"p\"q"}]}`,
			`{"a":{"card" : "***", "x":1},"list":[{"password":"***"}]}`},
		{`{"password":{"nested":true},"ok":"password"}`, `{"password":"***","ok":"password"}`},
		{`{"nothing":"here"}`, `{"nothing":"here"}`},
		{`{"password":"unterminated`, `{"password":"unterminated`},
	} {
		got, _ := redact([]byte(tc.in), fields, []byte(`"***"`))
		if string(got) != tc.want {
			t.Errorf("redact(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestFilter(t *testing.T) {
	f := newRedactor(config{Fields: []string{"password"}, Mask: "[hidden]"})
	h := filtertest.New()
	h.Method = "POST"
	h.ReqHeader = filtertest.Headers("Content-Type", "application/json")
	h.ReqBody = []byte(`{"user":"ann","password":"hunter2"}`)
	var upstream string
	filtertest.Run(f, func(h *filtertest.Host) { upstream = string(h.ReqBody) })
	if upstream != `{"user":"ann","password":"[hidden]"}` {
		t.Errorf("upstream got %s", upstream)
	}
	if v, _ := filtertest.Get(h.ReqHeader, "x-redacted"); v != "1" {
		t.Errorf("x-redacted %q", v)
	}

	h = filtertest.New()
	h.ReqHeader = filtertest.Headers("Content-Type", "text/plain")
	h.ReqBody = []byte(`{"password":"x"}`)
	filtertest.Run(f, nil)
	if string(h.ReqBody) != `{"password":"x"}` {
		t.Errorf("non-JSON body changed: %s", h.ReqBody)
	}
}

// FuzzRedact feeds arbitrary bodies (client-controlled input) to the scanner: it must not panic,
// must return the input unchanged when it replaced nothing, and must keep valid JSON valid.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{`{"password":"x"}`, `{"a":[{"password":{"b":[1,"]"]}}]}`, `{"password"`, `"\`, `[`, ``} {
		f.Add([]byte(s))
	}
	fields := [][]byte{[]byte("password")}
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, n := redact(doc, fields, []byte(`"***"`))
		if n == 0 && string(out) != string(doc) {
			t.Fatalf("nothing replaced but the body changed: %q -> %q", doc, out)
		}
		if n > 0 && json.Valid(doc) && !json.Valid(out) {
			t.Fatalf("valid JSON became invalid: %q -> %q", doc, out)
		}
	})
}
