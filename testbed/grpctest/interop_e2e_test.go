package grpctest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The interop cases report a failure with grpclog's Fatal, which exits the process. This logger
// turns it into a panic that the case's runner recovers, so each case fails on its own.
type fatalPanics struct{ grpclog.LoggerV2 }

type interopFailure struct{ msg string }

func (fatalPanics) Fatal(args ...any)   { panic(interopFailure{fmt.Sprint(args...)}) }
func (fatalPanics) Fatalln(args ...any) { panic(interopFailure{fmt.Sprintln(args...)}) }
func (fatalPanics) Fatalf(format string, args ...any) {
	panic(interopFailure{fmt.Sprintf(format, args...)})
}

func TestMain(m *testing.M) {
	grpclog.SetLoggerV2(fatalPanics{grpclog.NewLoggerV2(discard{}, discard{}, os.Stderr)})
	os.Exit(m.Run())
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// runCase runs one interop case, failing t with the case's own message.
func runCase(t *testing.T, do func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(interopFailure); ok {
				msg := f.msg
				if len(msg) > 600 {
					msg = msg[:600] + "…" // the cases print whole payloads
				}
				t.Fatalf("interop case failed: %s", msg)
			}
			panic(r)
		}
	}()
	do()
}

// backend is an interop test server on a loopback listener.
type backend struct {
	addr string
	cert string // the TLS certificate's file, "" for h2c
}

// startBackend serves interop.NewTestServer over h2c, or over TLS with a fresh certificate for
// localhost and 127.0.0.1 written to dir.
func startBackend(t *testing.T, dir string, useTLS bool) backend {
	t.Helper()
	var opts []grpc.ServerOption
	b := backend{}
	if useTLS {
		gatewaytest.WriteCert(t, dir, "backend.pem", "backend-key.pem")
		b.cert = filepath.Join(dir, "backend.pem")
		creds, err := credentials.NewServerTLSFromFile(b.cert, filepath.Join(dir, "backend-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	b.addr = ln.Addr().String()
	return b
}

// gatewayConfig is the HCL of a gateway in front of b: h2c to a cleartext backend, h2 (TLS,
// verified against the backend's certificate) to a TLS one; the gateway's own listener is TLS
// (h2 by ALPN) when tlsFront, else cleartext with h2c. pipeline is the pipeline block's filters.
func gatewayConfig(b backend, tlsFront bool, filters string) string {
	server := `server {
  protocols = ["http1", "h2c"]
}`
	if tlsFront {
		server = `server {
  protocols = ["http1", "h2"]
  tls {
    cert_file = "gateway.pem"
    key_file  = "gateway-key.pem"
  }
}`
	}
	target := fmt.Sprintf("target { address = %q }\n  protocol = \"h2c\"", b.addr)
	if b.cert != "" {
		target = fmt.Sprintf("target {\n    address = %q\n    tls     = true\n    ca_file = %q\n  }\n  protocol = \"h2\"", b.addr, b.cert)
	}
	return fmt.Sprintf(`%s
upstream "interop" {
  %s
  timeouts { request = "30s" }
}
pipeline "grpc" {
%s
  balancer { upstream = upstream.interop }
}
`, server, target, filters)
}

// startGateway starts a gateway from src in dir (with a certificate for its TLS listener) and
// returns a client connection to it.
func startGateway(t *testing.T, dir, src string, tlsFront bool, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if tlsFront {
		gatewaytest.WriteCert(t, dir, "gateway.pem", "gateway-key.pem")
	}
	gw := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir})
	return dial(t, gw.Addr, dir, tlsFront, opts...)
}

// dial connects a gRPC client to the gateway at addr (TLS verified against dir/gateway.pem).
func dial(t *testing.T, addr, dir string, tlsFront bool, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if tlsFront {
		var err error
		// The interop client's -use_tls -ca_file=… -server_host_override=localhost.
		if creds, err = credentials.NewClientTLSFromFile(filepath.Join(dir, "gateway.pem"), "localhost"); err != nil {
			t.Fatal(err)
		}
	}
	cc, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(creds))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// The standard cases of the interop client (interop/client -test_case=…) that need no cloud
// credentials, load balancer or xDS.
var standardCases = []struct {
	name string
	run  func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption)
}{
	{"empty_unary", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoEmptyUnaryCall(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"large_unary", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoLargeUnaryCall(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"client_streaming", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoClientStreaming(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"server_streaming", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoServerStreaming(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"ping_pong", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoPingPong(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"empty_stream", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoEmptyStream(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"timeout_on_sleeping_server", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoTimeoutOnSleepingServer(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"cancel_after_begin", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoCancelAfterBegin(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"cancel_after_first_response", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoCancelAfterFirstResponse(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"status_code_and_message", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoStatusCodeAndMessage(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"special_status_message", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoSpecialStatusMessage(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"custom_metadata", func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) {
		interop.DoCustomMetadata(ctx, testgrpc.NewTestServiceClient(cc), o...)
	}},
	{"unimplemented_method", func(ctx context.Context, cc *grpc.ClientConn, _ ...grpc.CallOption) {
		interop.DoUnimplementedMethod(ctx, cc)
	}},
	{"unimplemented_service", func(ctx context.Context, cc *grpc.ClientConn, _ ...grpc.CallOption) {
		interop.DoUnimplementedService(ctx, testgrpc.NewUnimplementedServiceClient(cc))
	}},
}

// TestInterop runs every standard interop case through the gateway: a client over h2c to a
// gateway proxying h2c to the backend, and a client over TLS (h2 by ALPN) to a gateway proxying
// h2 over TLS.
func TestInterop(t *testing.T) {
	for _, tlsMode := range []bool{false, true} {
		name := "h2c"
		if tlsMode {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b := startBackend(t, dir, tlsMode)
			cc := startGateway(t, dir, gatewayConfig(b, tlsMode, ""), tlsMode)
			for _, tc := range standardCases {
				t.Run(tc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					runCase(t, func() { tc.run(ctx, cc) })
				})
			}
		})
	}
}

// testSecret signs the test tokens (HS256 needs at least 32 bytes).
const testSecret = "interop-test-secret-0123456789abcdef"

// token mints an HS256 JWT for sub, valid for an hour, signed with testSecret.
func token(sub string) string { return tokenWith(testSecret, sub) }

// tokenWith mints an HS256 JWT for sub, valid for an hour, signed with secret.
func tokenWith(secret, sub string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, time.Now().Add(time.Hour).Unix())))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(head + "." + body))
	return head + "." + body + "." + enc.EncodeToString(mac.Sum(nil))
}

// withMetadata adds a metadata pair to every call of a connection, as the interop client's
// -additional_metadata does (cases that set their own metadata keep it).
func withMetadata(k, v string) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, k, v), method, req, reply, cc, opts...)
	}), grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(metadata.AppendToOutgoingContext(ctx, k, v), desc, cc, method, opts...)
	})}
}

const authPipeline = `
  filter "jwt" {
    hmac_secret = %q
  }
  filter "rate_limit" {
    key    = "claim:sub"
    limit  = %d
    period = "1h"
  }`

// TestInteropWithAuth runs the suite again behind jwt and rate_limit: with a token every case
// passes; without one a call ends UNAUTHENTICATED, and once the caller's limit is spent
// RESOURCE_EXHAUSTED — the gateway's 401 and 429 as gRPC statuses.
func TestInteropWithAuth(t *testing.T) {
	for _, tlsMode := range []bool{false, true} {
		name := "h2c"
		if tlsMode {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b := startBackend(t, dir, tlsMode)
			cc := startGateway(t, dir, gatewayConfig(b, tlsMode, fmt.Sprintf(authPipeline, testSecret, 1000)), tlsMode,
				withMetadata("authorization", "Bearer "+token("interop-"+name))...)
			anon := dial(t, cc.Target(), dir, tlsMode) // the same gateway, no token
			for _, tc := range standardCases {
				t.Run(tc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					runCase(t, func() { tc.run(ctx, cc) })
				})
			}
			t.Run("missing_token", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := testgrpc.NewTestServiceClient(anon).EmptyCall(ctx, &testgrpc.Empty{})
				if status.Code(err) != codes.Unauthenticated {
					t.Fatalf("EmptyCall without a token: %v, want UNAUTHENTICATED", err)
				}
			})
		})
	}
}

// TestRateLimitResourceExhausted: a caller past its rate_limit gets RESOURCE_EXHAUSTED, another
// caller is not affected.
func TestRateLimitResourceExhausted(t *testing.T) {
	dir := t.TempDir()
	b := startBackend(t, dir, false)
	cc := startGateway(t, dir, gatewayConfig(b, false, fmt.Sprintf(authPipeline, testSecret, 3)), false)
	client := testgrpc.NewTestServiceClient(cc)
	call := func(sub string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token(sub))
		_, err := client.EmptyCall(ctx, &testgrpc.Empty{})
		return err
	}
	for i := 0; i < 3; i++ {
		if err := call("alice"); err != nil {
			t.Fatalf("call %d within the limit: %v", i+1, err)
		}
	}
	err := call("alice")
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the 4th call of 3 per hour: %v, want RESOURCE_EXHAUSTED", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "Too Many Requests") {
		t.Errorf("RESOURCE_EXHAUSTED message %q", msg)
	}
	if err := call("bob"); err != nil {
		t.Errorf("another caller: %v", err)
	}
}
