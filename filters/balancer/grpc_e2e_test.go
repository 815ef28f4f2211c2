package balancer_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// grpcPost sends a gRPC-shaped unary call (one empty message) over HTTP/1.1.
func grpcPost(t *testing.T, url string, headers ...string) *fasthttp.Response {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	t.Cleanup(func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) })
	req.Header.SetMethod("POST")
	req.SetRequestURI(url)
	req.Header.SetContentType("application/grpc")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req.SetBody([]byte{0, 0, 0, 0, 0})
	if err := gatewaytest.Client().DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestGRPCTimeout: the client's grpc-timeout bounds the upstream call (DEADLINE_EXCEEDED well
// before the upstream's request timeout) and reaches the upstream reduced; a timeout longer than
// the upstream's request timeout is cut to it.
func TestGRPCTimeout(t *testing.T) {
	var seen atomic.Value
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) {
		seen.Store(string(fc.Request.Header.Peek("grpc-timeout")))
		if string(fc.Path()) == "/slow" {
			time.Sleep(1500 * time.Millisecond)
		}
		fc.Response.Header.SetContentType("application/grpc")
		fc.SetBodyString("\x00\x00\x00\x00\x00")
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
  timeouts { request = "10s" }
  retry { attempts = 0 }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	start := time.Now()
	r := grpcPost(t, gw.URL+"/slow", "grpc-timeout", "200m")
	took := time.Since(start)
	if string(r.Header.Peek("grpc-status")) != "4" || took > time.Second {
		t.Errorf("grpc-timeout 200m on a 1.5 s call: grpc-status %q after %v, want 4 within 1s", r.Header.Peek("grpc-status"), took)
	}
	if got := parseTimeout(t, seen.Load()); got <= 0 || got > 200*time.Millisecond {
		t.Errorf("the upstream got grpc-timeout %v, want (0, 200ms]", got)
	}
	// Longer than the upstream's 10 s request timeout: the upstream learns the gateway's bound.
	r = grpcPost(t, gw.URL+"/fast", "grpc-timeout", "3M")
	if r.StatusCode() != 200 || len(r.Header.Peek("grpc-status")) != 0 {
		t.Fatalf("a fast call: %s", r.String())
	}
	if got := parseTimeout(t, seen.Load()); got <= 9*time.Second || got > 10*time.Second {
		t.Errorf("grpc-timeout 3M through a 10 s upstream: the upstream got %v, want at most 10s", got)
	}
	// Without grpc-timeout nothing is added.
	grpcPost(t, gw.URL+"/fast")
	if got := seen.Load(); got != "" {
		t.Errorf("a call without grpc-timeout reached the upstream with %q", got)
	}
	// A malformed grpc-timeout is no bound and is passed on as it is.
	grpcPost(t, gw.URL+"/fast", "grpc-timeout", "1.5S")
	if got := seen.Load(); got != "1.5S" {
		t.Errorf("a malformed grpc-timeout reached the upstream as %q", got)
	}
}

func parseTimeout(t *testing.T, v any) time.Duration {
	t.Helper()
	s, _ := v.(string)
	if len(s) < 2 {
		t.Fatalf("no grpc-timeout upstream (%q)", s)
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': 1}[s[len(s)-1]]
	var n int64
	if _, err := fmt.Sscan(s[:len(s)-1], &n); err != nil || unit == 0 {
		t.Fatalf("grpc-timeout %q", s)
	}
	return time.Duration(n) * unit
}

// TestGRPCRetryOn: a call answered trailers-only with UNAVAILABLE by the first target is retried
// on the other when retry.grpc_on lists it; never when the status came after a body, and not
// without grpc_on.
func TestGRPCRetryOn(t *testing.T) {
	var calls atomic.Int32
	var mode atomic.Value // how the first call of a test fails
	h := func(fc *fasthttp.RequestCtx) {
		n := calls.Add(1)
		fc.Response.Header.SetContentType("application/grpc")
		if n == 1 {
			switch mode.Load() {
			case "trailers-only":
				fc.Response.Header.Set("grpc-status", "14")
				fc.Response.Header.Set("grpc-message", "draining")
				return
			case "after-body":
				fc.Response.Header.Set("grpc-status", "14")
				fc.SetBodyString("\x00\x00\x00\x00\x00")
				return
			case "not-listed":
				fc.Response.Header.Set("grpc-status", "5")
				return
			}
		}
		fc.SetBodyString("\x00\x00\x00\x00\x00")
	}
	a, b := gatewaytest.Upstream(t, h), gatewaytest.Upstream(t, h)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "retrying" {
  target { address = %q }
  target { address = %q }
  retry {
    attempts       = 1
    grpc_on        = ["unavailable"]
    budget_percent = 100
  }
}
upstream "plain" {
  target { address = %q }
  target { address = %q }
  retry { attempts = 1 }
}
pipeline "retrying" {
  match { path_prefix = "/r/" }
  balancer { upstream = upstream.retrying }
}
pipeline "plain" {
  balancer { upstream = upstream.plain }
}
`, a, b, a, b))
	for _, tc := range []struct {
		path, mode string
		calls      int32
		status     string
	}{
		{"/r/svc/M", "trailers-only", 2, ""},       // retried: the second target answered OK
		{"/r/svc/M", "after-body", 1, "14"},        // the body had started: passed on as it is
		{"/r/svc/M", "not-listed", 1, "5"},         // NOT_FOUND is not in grpc_on
		{"/plain/svc/M", "trailers-only", 1, "14"}, // no grpc_on: the upstream's status
	} {
		t.Run(tc.path+" "+tc.mode, func(t *testing.T) {
			calls.Store(0)
			mode.Store(tc.mode)
			r := grpcPost(t, gw.URL+tc.path)
			if got := calls.Load(); got != tc.calls {
				t.Errorf("%d upstream calls, want %d", got, tc.calls)
			}
			if got := string(r.Header.Peek("grpc-status")); r.StatusCode() != 200 || got != tc.status {
				t.Errorf("HTTP %d grpc-status %q, want 200 %q", r.StatusCode(), got, tc.status)
			}
			if tc.status == "" && !strings.HasPrefix(string(r.Header.ContentType()), "application/grpc") {
				t.Errorf("content type %q", r.Header.ContentType())
			}
		})
	}
}
