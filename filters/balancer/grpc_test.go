package balancer

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestParseGRPCTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "250m": 250 * time.Millisecond,
		"7u": 7 * time.Microsecond, "99999999n": 99999999, "0m": 0, "00000001S": time.Second,
		"99999999H": maxDuration,
	} {
		if got, ok := parseGRPCTimeout([]byte(in)); !ok || got != want {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "S", "1", "1s", "1x", "-1S", "123456789S", "1.5S", " 1S", "1 S"} {
		if _, ok := parseGRPCTimeout([]byte(in)); ok {
			t.Errorf("parseGRPCTimeout(%q) accepted", in)
		}
	}
}

func TestAppendGRPCTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1:                        "1n",
		99999999:                 "99999999n",
		100000000:                "100000u",
		100000001:                "100001u", // rounded up
		1500 * time.Millisecond:  "1500000u",
		200 * time.Second:        "200000m",
		200000 * time.Second:     "200000S",
		1000 * time.Hour:         "3600000S",
		maxDuration:              "2562048H",
		time.Duration(1<<62 + 5): "76861434M",
	} {
		got := string(appendGRPCTimeout(nil, d))
		if got != want {
			t.Errorf("appendGRPCTimeout(%v) = %q, want %q", d, got, want)
			continue
		}
		back, ok := parseGRPCTimeout([]byte(got))
		if !ok || back < d && d != maxDuration {
			t.Errorf("%q parses back to %v (%v), less than %v", got, back, ok, d)
		}
	}
}

func TestTrailersOnlyStatus(t *testing.T) {
	var r fasthttp.Response
	r.Header.SetContentType("application/grpc")
	r.Header.Set("grpc-status", "14")
	if got := trailersOnlyStatus(&r, nil); got != 14 {
		t.Errorf("trailers-only UNAVAILABLE: %d", got)
	}
	r.SetBodyString("\x00\x00\x00\x00\x00")
	if got := trailersOnlyStatus(&r, nil); got != -1 {
		t.Errorf("a response with a body: %d", got)
	}
	r.ResetBody()
	r.SetStatusCode(503)
	if got := trailersOnlyStatus(&r, nil); got != -1 {
		t.Errorf("HTTP 503: %d", got)
	}
	r.SetStatusCode(200)
	r.Header.Set("grpc-status", "x")
	if got := trailersOnlyStatus(&r, nil); got != -1 {
		t.Errorf("a malformed status: %d", got)
	}
}

func TestGRPCOnValidation(t *testing.T) {
	c := &Config{Targets: []TargetConfig{{Address: "127.0.0.1:1"}}, Retry: &RetryConfig{GRPCOn: []string{"unavailable", "UNAVAILABLE", "not_found"}}}
	err := c.Validate()
	if err == nil {
		t.Fatal("bad grpc_on accepted")
	}
	for _, want := range []string{`"UNAVAILABLE"`, `"not_found"`, "retry.grpc_on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	r := compileRetryOn(nil, GRPCRetryConditions)
	if r.grpc != 1<<1|1<<4|1<<8|1<<13|1<<14 {
		t.Errorf("grpc_on bits %b", r.grpc)
	}
}

func TestHealthCheckMessages(t *testing.T) {
	if got := healthCheckRequest(""); string(got) != "\x00\x00\x00\x00\x00" {
		t.Errorf("empty service: %q", got)
	}
	if got := healthCheckRequest("a.B"); string(got) != "\x00\x00\x00\x00\x05\x0a\x03a.B" {
		t.Errorf("service a.B: %q", got)
	}
	for in, want := range map[string]uint64{
		"\x00\x00\x00\x00\x00":                  0, // UNKNOWN
		"\x00\x00\x00\x00\x02\x08\x01":          1, // SERVING
		"\x00\x00\x00\x00\x02\x08\x02":          2, // NOT_SERVING
		"\x00\x00\x00\x00\x05\x12\x01x\x08\x01": 1, // an unknown field first
	} {
		if got, err := parseHealthCheckResponse([]byte(in)); err != nil || got != want {
			t.Errorf("parseHealthCheckResponse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\x00\x00\x00", "\x01\x00\x00\x00\x00", "\x00\x00\x00\x00\x05\x08\x01",
		"\x00\x00\x00\x00\x02\x12\x05", "\x00\x00\x00\x00\x01\x0b", "\x00\x00\x00\x00\x01\x08"} {
		if _, err := parseHealthCheckResponse([]byte(in)); err == nil {
			t.Errorf("parseHealthCheckResponse(%q) accepted", in)
		}
	}
}

func TestReplaySource(t *testing.T) {
	s := newReplaySource(strings.NewReader("hello, world"))
	first := s.view()
	buf := make([]byte, 5)
	n, _ := first.Read(buf)
	if string(buf[:n]) != "hello" {
		t.Fatalf("first read %q", buf[:n])
	}
	// A retry: the second attempt gets the whole body, what the first read included.
	if all, err := io.ReadAll(s.view()); err != nil || string(all) != "hello, world" {
		t.Fatalf("second attempt: %q, %v", all, err)
	}
	if all, _ := io.ReadAll(s.view()); string(all) != "hello, world" {
		t.Errorf("third attempt: %q", all)
	}
	if s.lost() {
		t.Error("a 12-byte body lost")
	}
	big := strings.Repeat("x", maxGRPCReplay+1)
	s = newReplaySource(strings.NewReader(big))
	if all, _ := io.ReadAll(s.view()); len(all) != len(big) || !s.lost() {
		t.Errorf("a body over maxGRPCReplay: read %d, lost %v", len(all), s.lost())
	}
	if _, err := s.view().Read(buf); !errors.Is(err, errReplayLost) {
		t.Errorf("a view of a lost body: %v", err)
	}
}

// TestReplaySourceStaleRead: the bytes an abandoned attempt's read returns after the next
// attempt started are kept for it; the new attempt waits for that read instead of reading
// the client's stream beside it.
func TestReplaySourceStaleRead(t *testing.T) {
	pr, pw := io.Pipe()
	s := newReplaySource(pr)
	stale := s.view()
	got := make(chan string)
	go func() {
		b := make([]byte, 64)
		n, _ := stale.Read(b) // blocks in the client's stream
		got <- string(b[:n])
	}()
	// Wait for the stale read to be inside the source.
	for {
		s.mu.Lock()
		r := s.reading
		s.mu.Unlock()
		if r {
			break
		}
		time.Sleep(time.Millisecond)
	}
	live := s.view()
	done := make(chan string)
	go func() {
		all, _ := io.ReadAll(live)
		done <- string(all)
	}()
	if _, err := pw.Write([]byte("message-1")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "message-1" {
		t.Errorf("stale read %q", g)
	}
	pw.Write([]byte(" message-2"))
	pw.Close()
	if all := <-done; all != "message-1 message-2" {
		t.Errorf("the live attempt read %q", all)
	}
}
