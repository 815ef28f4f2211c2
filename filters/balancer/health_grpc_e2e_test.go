package balancer_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/balancer"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestGRPCHealthCheck: a target whose grpc.health.v1 service reports NOT_SERVING for the
// checked service is marked unhealthy, and healthy again once it reports SERVING; a target that
// does not know the service is unhealthy too.
func TestGRPCHealthCheck(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
  health_check {
    type                = "grpc"
    service             = "shop.Cart"
    interval            = "50ms"
    timeout             = "1s"
    healthy_threshold   = 1
    unhealthy_threshold = 1
  }
}
upstream "unknown" {
  target { address = %q }
  health_check {
    type                = "grpc"
    service             = "no.Such"
    interval            = "50ms"
    unhealthy_threshold = 1
  }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
pipeline "q" {
  match { path_prefix = "/q/" }
  balancer { upstream = upstream.unknown }
}
`, ln.Addr(), ln.Addr()))
	addr := ln.Addr().String()
	waitFor(t, 5*time.Second, "SERVING: healthy", func() bool {
		ts := targetStatus(t, gw, addr)
		return ts.Healthy && ts.ProbeSuccesses >= 2
	})
	hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, 5*time.Second, "NOT_SERVING: unhealthy", func() bool { return !targetStatus(t, gw, addr).Healthy })
	hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, 5*time.Second, "SERVING again: healthy", func() bool { return targetStatus(t, gw, addr).Healthy })

	waitFor(t, 5*time.Second, "an unknown service: unhealthy", func() bool {
		return !upstreamTarget(t, gw, "unknown", addr).Healthy
	})
}

// upstreamTarget returns the state of target addr of upstream name.
func upstreamTarget(t *testing.T, gw *gatewaytest.Gateway, name, addr string) balancer.TargetStatus {
	t.Helper()
	u, ok := gw.Server.Gateway().Upstreams[name].(engine.UpstreamStatus)
	if !ok {
		t.Fatalf("no upstream %s", name)
	}
	for _, ts := range u.Status().(balancer.Status).Targets {
		if ts.Address == addr {
			return ts
		}
	}
	t.Fatalf("no target %s in upstream %s", addr, name)
	return balancer.TargetStatus{}
}
