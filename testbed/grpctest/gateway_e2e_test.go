package grpctest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// serveGRPC serves srv on a loopback port until the test ends.
func serveGRPC(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// TestGatewayStatusesOverHTTP2: what a gRPC client over HTTP/2 reads when the gateway answers
// itself — no route, no target reachable, the call's own grpc-timeout spent at the gateway.
func TestGatewayStatusesOverHTTP2(t *testing.T) {
	// A backend whose unary calls take 2 s: the client's deadline is enforced by the gateway too.
	slow := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return h(ctx, req)
	}))
	testgrpc.RegisterTestServiceServer(slow, interop.NewTestServer())
	slowAddr := serveGRPC(t, slow)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server { protocols = ["http1", "h2c"] }
upstream "slow" {
  target { address = %q }
  protocol = "h2c"
}
upstream "dead" {
  target { address = %q }
  protocol = "h2c"
}
pipeline "slow" {
  match { path_prefix = "/grpc.testing.TestService/" }
  balancer { upstream = upstream.slow }
}
pipeline "dead" {
  match { path_prefix = "/grpc.testing.UnimplementedService/" }
  balancer { upstream = upstream.dead }
}
`, slowAddr, deadAddr))
	cc := dial(t, gw.Addr, "", false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// No pipeline matches /grpc.health.v1.Health/Check: the gateway's 404.
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if c := status.Code(err); c != codes.Unimplemented {
		t.Errorf("no route: %v, want UNIMPLEMENTED", err)
	}
	// Connection refused: the balancer's 502.
	_, err = testgrpc.NewUnimplementedServiceClient(cc).UnimplementedCall(ctx, &testgrpc.Empty{})
	if c := status.Code(err); c != codes.Unavailable {
		t.Errorf("dead target: %v, want UNAVAILABLE", err)
	}
	// The client's 300 ms deadline travels as grpc-timeout; the gateway gives up on the
	// upstream then (its 504) even if the client were still waiting.
	start := time.Now()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = testgrpc.NewTestServiceClient(cc).EmptyCall(short, &testgrpc.Empty{})
	if c := status.Code(err); c != codes.DeadlineExceeded || time.Since(start) > 1500*time.Millisecond {
		t.Errorf("deadline: %v after %v, want DEADLINE_EXCEEDED within 1.5s", err, time.Since(start))
	}
}

// TestRetryOnUnavailable: a backend that answers the first call UNAVAILABLE (trailers-only) has
// the call retried on the other target when retry.grpc_on lists "unavailable"; the client sees
// one successful call.
func TestRetryOnUnavailable(t *testing.T) {
	var calls atomic.Int32
	failOnce := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if calls.Add(1) == 1 {
			return nil, status.Error(codes.Unavailable, "draining")
		}
		return h(ctx, req)
	})
	var addrs []any
	for range 2 {
		srv := grpc.NewServer(failOnce)
		testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
		addrs = append(addrs, serveGRPC(t, srv))
	}
	src := `
server { protocols = ["http1", "h2c"] }
upstream "backend" {
  target { address = %q }
  target { address = %q }
  protocol = "h2c"
  retry {
    attempts       = 1
    grpc_on        = [%s]
    budget_percent = 100
  }
}
pipeline "grpc" {
  balancer { upstream = upstream.backend }
}
`
	for _, tc := range []struct {
		grpcOn  string
		payload int // request payload bytes
		want    codes.Code
		calls   int32
	}{
		{`"unavailable"`, 10, codes.OK, 2},
		{``, 10, codes.Unavailable, 1},
		// More than the 64 KiB the gateway keeps of a streamed request body to send again.
		{`"unavailable"`, 100 << 10, codes.Unavailable, 1},
	} {
		t.Run(fmt.Sprintf("grpc_on=[%s],payload=%d", tc.grpcOn, tc.payload), func(t *testing.T) {
			calls.Store(0)
			gw := gatewaytest.Start(t, fmt.Sprintf(src, append(addrs, tc.grpcOn)...))
			cc := dial(t, gw.Addr, "", false)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req := &testgrpc.SimpleRequest{ResponseSize: 10, Payload: &testgrpc.Payload{Body: make([]byte, tc.payload)}}
			_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, req)
			if status.Code(err) != tc.want || calls.Load() != tc.calls {
				t.Errorf("got %v after %d upstream calls, want %v after %d", err, calls.Load(), tc.want, tc.calls)
			}
		})
	}
}

// TestGRPCHealthCheckOverTLS: health_check type "grpc" reaches a TLS target over h2 (ALPN),
// verified against its ca_file, and follows its serving status.
func TestGRPCHealthCheckOverTLS(t *testing.T) {
	dir := t.TempDir()
	gatewaytest.WriteCert(t, dir, "backend.pem", "backend-key.pem")
	hs := health.NewServer()
	srv := grpc.NewServer(tlsCreds(t, dir))
	healthpb.RegisterHealthServer(srv, hs)
	addr := serveGRPC(t, srv)
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
upstream "u" {
  target {
    address = %q
    tls     = true
    ca_file = "backend.pem"
  }
  protocol = "h2"
  health_check {
    type                = "grpc"
    interval            = "50ms"
    healthy_threshold   = 1
    unhealthy_threshold = 1
  }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, addr), gatewaytest.Options{Dir: dir})
	healthy := func() bool {
		st := gw.Server.Gateway().Upstreams["u"].(interface{ Healthy() bool })
		return st.Healthy()
	}
	waitUntil(t, "SERVING: healthy", healthy)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitUntil(t, "NOT_SERVING: unhealthy", func() bool { return !healthy() })
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitUntil(t, "SERVING again", healthy)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tlsCreds is the server option of a gRPC server with dir's backend certificate.
func tlsCreds(t *testing.T, dir string) grpc.ServerOption {
	t.Helper()
	creds, err := credentials.NewServerTLSFromFile(filepath.Join(dir, "backend.pem"), filepath.Join(dir, "backend-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return grpc.Creds(creds)
}
