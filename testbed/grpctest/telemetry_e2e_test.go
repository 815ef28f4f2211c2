package grpctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestStatusInTrailersRecorded: a gRPC call's status that arrives in the trailers after a
// streamed response body (every call the backend answers with messages) reaches the server span
// (rpc.grpc.status_code) and both otel_log outputs (OTLP and a JSON file): OK for a unary call,
// the backend's code for a server stream that fails after its messages, UNKNOWN for the interop
// status_code_and_message case, and CANCELLED with an error span for a stream the client cut.
func TestStatusInTrailersRecorded(t *testing.T) {
	rcv, err := otlpreceiver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Close() })
	// A server stream asked with "fail-after: 1" sends its messages, then DATA_LOSS.
	failAfter := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := h(srv, ss); err != nil {
			return err
		}
		if md, _ := metadata.FromIncomingContext(ss.Context()); len(md.Get("fail-after")) > 0 {
			return status.Error(codes.DataLoss, "lost after the messages")
		}
		return nil
	})
	srv := grpc.NewServer(failAfter)
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	addr := serveGRPC(t, srv)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	cc := startGateway(t, dir, fmt.Sprintf(`
telemetry {
  service_name = "grpc-status-test"
  traces {
    exporter     = "otlp"
    endpoint     = %[1]q
    sample_ratio = 1
  }
  logs { endpoint = %[1]q }
}
server { protocols = ["http1", "h2c"] }
upstream "interop" {
  target { address = %[2]q }
  protocol = "h2c"
}
pipeline "grpc" {
  filter "otel_log" { output = "otlp" }
  filter "otel_log" { output = %[3]q }
  balancer { upstream = upstream.interop }
}
`, rcv.Endpoint, addr, logFile), false)
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Fatalf("EmptyCall: %v", err)
	}
	failing := metadata.AppendToOutgoingContext(ctx, "fail-after", "1")
	stream, err := client.StreamingOutputCall(failing, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 20}},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := 0
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
		msgs++
	}
	if msgs != 2 || status.Code(err) != codes.DataLoss {
		t.Fatalf("server stream: %d messages, then %v; want 2 and DATA_LOSS", msgs, err)
	}
	runCase(t, func() { interop.DoStatusCodeAndMessage(ctx, client) })
	runCase(t, func() { interop.DoCancelAfterFirstResponse(ctx, client) })

	// The calls' spans and records, by method. StatusCodeAndMessage makes a unary and a
	// full-duplex call; CancelAfterFirstResponse another full-duplex one.
	want := map[string][]int64{
		"EmptyCall":           {0},
		"StreamingOutputCall": {15},
		"UnaryCall":           {2},
		"FullDuplexCall":      {1, 2},
	}
	spans, err := rcv.WaitSpans(10*time.Second, func(s []otlpreceiver.Span) bool { return len(servers(s)) >= 5 })
	if err != nil {
		t.Fatalf("server spans: %v (%d)", err, len(servers(spans)))
	}
	got := map[string][]int64{}
	for _, s := range servers(spans) {
		m, _ := s.Attributes["rpc.method"].(string)
		code, ok := s.Attributes["rpc.grpc.status_code"].(int64)
		if !ok {
			t.Errorf("%s span has no rpc.grpc.status_code: %v", m, s.Attributes)
			continue
		}
		got[m] = append(got[m], code)
		switch code {
		case 0:
			if s.StatusCode == "Error" {
				t.Errorf("%s: OK call's span is an error", m)
			}
		case 1: // the client cut the stream
			if s.StatusCode != "Error" || s.Attributes["error.type"] != "client_cut" {
				t.Errorf("%s: cut stream's span %s, error.type %v", m, s.StatusCode, s.Attributes["error.type"])
			}
		case 2, 15:
			if s.StatusCode != "Error" {
				t.Errorf("%s: code %d but span status %s", m, code, s.StatusCode)
			}
		}
	}
	checkCodes(t, "spans", got, want)

	logs, err := rcv.WaitLogs(10*time.Second, func(l []otlpreceiver.LogRecord) bool { return len(l) >= 5 })
	if err != nil {
		t.Fatalf("otel_log records: %v (%d)", err, len(logs))
	}
	got = map[string][]int64{}
	for _, l := range logs {
		path, _ := l.Attributes["url.path"].(string)
		m := path[strings.LastIndexByte(path, '/')+1:]
		code, ok := l.Attributes["rpc.grpc.status_code"].(int64)
		if !ok {
			t.Errorf("%s record has no rpc.grpc.status_code: %v", m, l.Attributes)
			continue
		}
		got[m] = append(got[m], code)
		if l.TraceID == "" {
			t.Errorf("%s record has no trace id", m)
		}
	}
	checkCodes(t, "otel_log records", got, want)

	// The JSON file's records (its writer flushes on its own).
	var b []byte
	waitUntil(t, "five access log lines", func() bool {
		b, _ = os.ReadFile(logFile)
		return strings.Count(string(b), "\n") >= 5
	})
	for _, w := range []string{
		// The streamed body's bytes: one empty message's 5-byte frame.
		`"path":"/grpc.testing.TestService/EmptyCall","status":200,"grpc_status":0,"bytes":5,`,
		`"path":"/grpc.testing.TestService/StreamingOutputCall","status":200,"grpc_status":15,`,
		`"path":"/grpc.testing.TestService/FullDuplexCall","status":200,"grpc_status":1,`,
	} {
		if !strings.Contains(string(b), w) {
			t.Errorf("access log lacks %s:\n%s", w, b)
		}
	}
	if !strings.Contains(string(b), `"error":"response body cut: client went away`) {
		t.Errorf("access log does not say the cut stream's cause:\n%s", b)
	}

	// sluice_grpc_responses_total counts each call by the status its trailers brought.
	counts := grpcResponseCounts(t, "grpc")
	for code, least := range map[string]float64{"0": 1, "15": 1, "2": 2, "1": 1} {
		if counts[code] < least {
			t.Errorf("sluice_grpc_responses_total{pipeline=\"grpc\",code=%q} = %v, want at least %v (all: %v)", code, counts[code], least, counts)
		}
	}
}

// grpcResponseCounts reads sluice_grpc_responses_total of a pipeline, by code, from the
// process's registry (the gateway runs in the test's process).
func grpcResponseCounts(t *testing.T, pipeline string) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sluice_grpc_responses_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["pipeline"] == pipeline {
				counts[labels["code"]] += m.GetCounter().GetValue()
			}
		}
	}
	return counts
}

func checkCodes(t *testing.T, what string, got, want map[string][]int64) {
	t.Helper()
	for m, codes := range want {
		if fmt.Sprint(sorted(got[m])) != fmt.Sprint(codes) {
			t.Errorf("%s: %s codes %v, want %v", what, m, got[m], codes)
		}
	}
}

func sorted(a []int64) []int64 {
	for i := range a {
		for j := i + 1; j < len(a); j++ {
			if a[j] < a[i] {
				a[i], a[j] = a[j], a[i]
			}
		}
	}
	return a
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
