package main

import (
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
