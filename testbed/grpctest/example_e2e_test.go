package grpctest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestExampleConfig serves examples/grpc/gateway.hcl (its service address replaced by a test
// backend's, its listener by a random port) and checks what its README promises: every interop
// case with a token (streams included, with retry.grpc_on keeping their bodies), UNAUTHENTICATED
// without one, RESOURCE_EXHAUSTED past the caller's limit.
func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile("../../examples/grpc/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := startBackend(t, dir, false)
	cfg := strings.Replace(string(src), `"127.0.0.1:50051"`, `"`+b.addr+`"`, 1)
	if cfg == string(src) {
		t.Fatal("the example's target address changed: update this test")
	}
	gw := gatewaytest.StartWith(t, cfg, gatewaytest.Options{Dir: dir})
	const secret = "grpc-demo-secret-change-me-0123456789abcdef" // the example's default
	cc := dial(t, gw.Addr, dir, false, withMetadata("authorization", "Bearer "+tokenWith(secret, "alice"))...)
	for _, tc := range standardCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			runCase(t, func() { tc.run(ctx, cc) })
		})
	}
	anon := testgrpc.NewTestServiceClient(dial(t, gw.Addr, dir, false))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := anon.EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a token: %v, want UNAUTHENTICATED", err)
	}
	// The example allows 20 calls per 10 s per caller; bob has made none.
	bob := testgrpc.NewTestServiceClient(dial(t, gw.Addr, dir, false, withMetadata("authorization", "Bearer "+tokenWith(secret, "bob"))...))
	var last error
	for i := 0; i < 25 && status.Code(last) != codes.ResourceExhausted; i++ {
		_, last = bob.EmptyCall(ctx, &testgrpc.Empty{})
	}
	if status.Code(last) != codes.ResourceExhausted {
		t.Errorf("25 calls at once: last %v, want RESOURCE_EXHAUSTED", last)
	}
}
