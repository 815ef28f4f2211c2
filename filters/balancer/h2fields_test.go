package balancer

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestH2Fields: the request's fields reach the Transport's header map with repeated ones kept
// in order, the fields it sets itself left out, then the forwarding and trace lines; appending
// to one field's values leaves the others as they were.
func TestH2Fields(t *testing.T) {
	var rh fasthttp.RequestHeader
	rh.SetMethod("POST")
	rh.SetRequestURI("/svc/Method?x=1")
	rh.SetHost("gateway.example")
	rh.SetContentLength(5)
	rh.Add("Accept", "a")
	rh.Add("X-Many", "one")
	rh.Add("X-Many", "two")
	rh.Add("Grpc-Timeout", "1S")
	fwd := []byte("X-Forwarded-For: 10.0.0.1\r\nVia: 1.1 sluice\r\n")
	trace := []byte("Traceparent: 00-abc-def-01\r\n")
	uri, hdr, buf := h2Fields(nil, &rh, fwd, trace)
	if uri != "/svc/Method?x=1" {
		t.Errorf("request-target %q", uri)
	}
	want := http.Header{
		"Accept":          {"a"},
		"X-Many":          {"one", "two"},
		"Grpc-Timeout":    {"1S"},
		"X-Forwarded-For": {"10.0.0.1"},
		"Via":             {"1.1 sluice"},
		"Traceparent":     {"00-abc-def-01"},
	}
	if ct := rh.ContentType(); len(ct) > 0 {
		want["Content-Type"] = []string{string(ct)}
	}
	if !reflect.DeepEqual(hdr, want) {
		t.Errorf("header map\n got %q\nwant %q", hdr, want)
	}
	hdr["Accept"] = append(hdr["Accept"], "b")
	if got := hdr["Grpc-Timeout"]; len(got) != 1 || got[0] != "1S" {
		t.Errorf("appending to Accept changed Grpc-Timeout: %q", got)
	}
	// The buffer is reused: what was made from it stays.
	var rh2 fasthttp.RequestHeader
	rh2.SetRequestURI("/other")
	rh2.Add("Accept", "zzzzzzzzzzzz")
	_, _, _ = h2Fields(buf, &rh2, nil, nil)
	if uri != "/svc/Method?x=1" || hdr["Via"][0] != "1.1 sluice" {
		t.Errorf("reusing the buffer changed an earlier request's fields: %q %q", uri, hdr["Via"])
	}
}
