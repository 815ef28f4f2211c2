package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
	"github.com/valyala/fasthttp"
)

// TestGRPCSpanAttributes: a gRPC call's server span carries the RPC attributes of semantic
// conventions v1.37 — rpc.system, rpc.service, rpc.method, rpc.grpc.status_code — for the
// upstream's own status and for the gateway's mapped one (which marks the span as an error).
func TestGRPCSpanAttributes(t *testing.T) {
	rcv := startReceiver(t)
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) {
		fc.Response.Header.SetContentType("application/grpc")
		fc.Response.Header.Set("grpc-status", "5") // NOT_FOUND, trailers-only
	})
	gw := startWithTelemetry(t, config(rcv.Endpoint, 1, up))
	for _, path := range []string{"/v1/shop.v1.Cart/Get", "/nowhere.Svc/Call"} {
		resp := do(t, gw.URL+path, "Content-Type", "application/grpc", "TE", "trailers")
		if resp.StatusCode() != 200 || len(resp.Header.Peek("grpc-status")) == 0 {
			t.Fatalf("%s: %d grpc-status %q", path, resp.StatusCode(), resp.Header.Peek("grpc-status"))
		}
	}
	if err := gw.Tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := rcv.WaitSpans(5*time.Second, func(s []otlpreceiver.Span) bool { return len(servers(s)) >= 2 })
	if err != nil {
		t.Fatalf("no server spans: %v", err)
	}
	byPath := map[string]otlpreceiver.Span{}
	for _, s := range servers(spans) {
		byPath[s.Attributes["url.path"].(string)] = s
	}
	for path, want := range map[string]map[string]any{
		"/v1/shop.v1.Cart/Get": {"rpc.system": "grpc", "rpc.service": "v1/shop.v1.Cart", "rpc.method": "Get",
			"rpc.grpc.status_code": int64(5), "http.response.status_code": int64(200)},
		"/nowhere.Svc/Call": {"rpc.system": "grpc", "rpc.service": "nowhere.Svc", "rpc.method": "Call",
			"rpc.grpc.status_code": int64(12), "http.response.status_code": int64(200), "error.type": "12"},
	} {
		s, ok := byPath[path]
		if !ok {
			t.Errorf("no server span for %s", path)
			continue
		}
		for k, v := range want {
			if got := s.Attributes[k]; got != v {
				t.Errorf("%s: %s = %#v, want %#v", path, k, got, v)
			}
		}
		if wantErr := want["error.type"] != nil; (s.StatusCode == "Error") != wantErr {
			t.Errorf("%s: span status %s", path, s.StatusCode)
		}
	}
}

func servers(spans []otlpreceiver.Span) []otlpreceiver.Span {
	var out []otlpreceiver.Span
	for _, s := range spans {
		if s.Kind == "Server" {
			out = append(out, s)
		}
	}
	return out
}
