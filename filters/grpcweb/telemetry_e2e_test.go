package grpcweb_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestStreamedStatusRecorded: a streamed gRPC-Web call's status, which the filter moves from the
// upstream's trailers into the body at the body's end, reaches the server span
// (rpc.grpc.status_code) and otel_log (grpc_status): OK for a plain server stream, DATA_LOSS for
// one the backend fails after its messages; grpc-web and grpc-web-text, over HTTP/1.1 and HTTP/2.
func TestStreamedStatusRecorded(t *testing.T) {
	rcv, err := otlpreceiver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Close() })
	srv := grpc.NewServer(grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := h(s, ss); err != nil {
			return err
		}
		if md, _ := metadata.FromIncomingContext(ss.Context()); len(md.Get("fail-after")) > 0 {
			return status.Error(codes.DataLoss, "lost after the messages")
		}
		return nil
	}))
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
telemetry {
  traces {
    exporter     = "otlp"
    endpoint     = %q
    sample_ratio = 1
  }
}
server { protocols = ["http1", "h2c"] }
upstream "interop" {
  protocol = "h2c"
  target { address = %q }
}
pipeline "grpc-web" {
  filter "grpc_web" {}
  filter "otel_log" { output = %q }
  balancer { upstream = upstream.interop }
}
`, rcv.Endpoint, ln.Addr().String(), logFile))
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	clients := []*http.Client{{Timeout: 20 * time.Second}, {Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: &h2c}}}
	req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 20}}}
	calls := 0
	for _, client := range clients {
		for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text"} {
			call := callWeb(t, client, gw.URL+"/grpc.testing.TestService/StreamingOutputCall", ct, req)
			if call.status() != "0" || len(call.messages) != 2 {
				t.Fatalf("%s: status %q, %d messages", ct, call.status(), len(call.messages))
			}
			call = callWeb(t, client, gw.URL+"/grpc.testing.TestService/StreamingOutputCall", ct, req, "fail-after", "1")
			if call.status() != "15" || len(call.messages) != 2 {
				t.Fatalf("%s failing: status %q, %d messages", ct, call.status(), len(call.messages))
			}
			calls += 2
		}
	}
	if err := gw.Telemetry.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans, err := rcv.WaitSpans(10*time.Second, func(s []otlpreceiver.Span) bool { return len(serverSpans(s)) >= calls })
	if err != nil {
		t.Fatalf("server spans: %v", err)
	}
	byCode := map[any]int{}
	for _, s := range serverSpans(spans) {
		byCode[s.Attributes["rpc.grpc.status_code"]]++
		if (s.Attributes["rpc.grpc.status_code"] == int64(15)) != (s.StatusCode == "Error") {
			t.Errorf("span with code %v has status %s", s.Attributes["rpc.grpc.status_code"], s.StatusCode)
		}
	}
	if byCode[int64(0)] != calls/2 || byCode[int64(15)] != calls/2 {
		t.Errorf("span status codes %v, want %d of 0 and of 15", byCode, calls/2)
	}
	var b []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ = os.ReadFile(logFile); strings.Count(string(b), "\n") >= calls {
			break
		}
	}
	if n0, n15 := strings.Count(string(b), `"grpc_status":0,`), strings.Count(string(b), `"grpc_status":15,`); n0 != calls/2 || n15 != calls/2 {
		t.Errorf("access log: %d records with grpc_status 0 and %d with 15, want %d each:\n%s", n0, n15, calls/2, b)
	}
}

func serverSpans(spans []otlpreceiver.Span) []otlpreceiver.Span {
	var out []otlpreceiver.Span
	for _, s := range spans {
		if s.Kind == "Server" {
			out = append(out, s)
		}
	}
	return out
}
