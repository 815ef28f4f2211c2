package engine_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// grpcCall sends a unary gRPC-shaped request (an empty message) over HTTP/1.1 and returns the
// response.
func grpcCall(t *testing.T, url, ct string) *fasthttp.Response {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	t.Cleanup(func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) })
	req.Header.SetMethod("POST")
	req.SetRequestURI(url)
	req.Header.SetContentType(ct)
	req.Header.Set("TE", "trailers")
	req.SetBody([]byte{0, 0, 0, 0, 0})
	if err := gatewaytest.Client().DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestGRPCStatusMapping: every response the gateway produces for a gRPC request — a reply of a
// non-gRPC upstream, a balancer failure, the no-route 404 — reaches the client as HTTP 200 with
// the mapped grpc-status; the upstream's own gRPC answer passes untouched.
func TestGRPCStatusMapping(t *testing.T) {
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) {
		path := string(fc.Path())
		if path == "/grpc/ok" {
			fc.Response.Header.SetContentType("application/grpc")
			fc.Response.Header.Set("grpc-status", "5")
			fc.Response.Header.Set("grpc-message", "not%20here")
			return
		}
		if path == "/slow" {
			time.Sleep(time.Second)
		}
		status, _ := strconv.Atoi(strings.TrimPrefix(path, "/status/"))
		fc.SetStatusCode(status)
		fc.SetContentType("text/html")
		fc.SetBodyString("<html>upstream page</html>")
	})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "up" {
  target { address = %q }
  timeouts { request = "300ms" }
  retry { attempts = 0 }
}
upstream "dead" {
  target { address = %q }
  retry { attempts = 0 }
}
pipeline "dead" {
  match { path_prefix = "/dead/" }
  balancer { upstream = upstream.dead }
}
pipeline "api" {
  match { path_prefix = "/status/" }
  balancer { upstream = upstream.up }
}
pipeline "other" {
  match { path_prefix = "/grpc/" }
  balancer { upstream = upstream.up }
}
pipeline "slow" {
  match { path_prefix = "/slow" }
  balancer { upstream = upstream.up }
}
`, up, deadAddr))
	for _, tc := range []struct {
		path, code, msg string
	}{
		{"/status/401", "16", "Unauthorized"},
		{"/status/403", "7", "Forbidden"},
		{"/status/429", "8", "Too Many Requests"},
		{"/status/413", "8", "Request Entity Too Large"},
		{"/status/431", "8", "Request Header Fields Too Large"},
		{"/status/502", "14", "Bad Gateway"},
		{"/status/503", "14", "Service Unavailable"},
		{"/status/504", "4", "Gateway Timeout"},
		{"/status/404", "12", "Not Found"},
		{"/status/400", "13", "Bad Request"},
		{"/status/418", "13", "I'm a teapot"},
		{"/status/500", "2", "Internal Server Error"},
		{"/dead/x", "14", "Bad Gateway"},  // connect failure: the balancer's 502
		{"/slow", "4", "Gateway Timeout"}, // upstream timeout: the balancer's 504
		{"/nowhere", "12", "no route for this request"},
		{"/grpc/ok", "5", "not%20here"}, // the upstream's own gRPC status
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			r := grpcCall(t, gw.URL+tc.path, "application/grpc")
			if r.StatusCode() != 200 || string(r.Header.ContentType()) != "application/grpc" ||
				string(r.Header.Peek("grpc-status")) != tc.code || string(r.Header.Peek("grpc-message")) != tc.msg ||
				len(r.Body()) != 0 {
				t.Errorf("got %d %q grpc-status=%q grpc-message=%q body=%q; want 200 grpc-status=%s grpc-message=%q",
					r.StatusCode(), r.Header.ContentType(), r.Header.Peek("grpc-status"), r.Header.Peek("grpc-message"), r.Body(), tc.code, tc.msg)
			}
		})
	}
	// A plain HTTP request to the same place keeps its HTTP status.
	if r := grpcCall(t, gw.URL+"/status/401", "application/json"); r.StatusCode() != 401 || len(r.Header.Peek("grpc-status")) != 0 {
		t.Errorf("a JSON request: %d %q", r.StatusCode(), r.Header.Peek("grpc-status"))
	}
	// The balancer's own failure is still logged, though the client saw HTTP 200.
	if logs := gw.Logs(); !strings.Contains(logs, "status=502") {
		t.Errorf("the gRPC call's 502 was not logged:\n%s", logs)
	}
}
