// Command grpcdemo is the gRPC service of examples/grpc: grpc-go's interoperability test service
// (grpc.testing.TestService, every kind of call) with the standard health service, and a client
// that runs the interoperability cases against an address, such as a gateway in front of it.
//
//	grpcdemo serve -listen 127.0.0.1:50051 [-tls-cert FILE -tls-key FILE]
//	grpcdemo call -addr 127.0.0.1:8080 [-token JWT] [-cases empty_unary,server_streaming,…] [-ca FILE -server-name NAME]
//
// serve prints "listening on ADDR" once it accepts connections; call prints one line per case and
// exits 1 if any failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grpcdemo serve|call [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "call":
		os.Exit(call(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "grpcdemo: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:50051", "address to listen on (h2c, or TLS with -tls-cert)")
	cert := fs.String("tls-cert", "", "PEM certificate: serve gRPC over TLS")
	key := fs.String("tls-key", "", "PEM private key of -tls-cert")
	_ = fs.Parse(args)
	var opts []grpc.ServerOption
	if *cert != "" {
		creds, err := credentials.NewServerTLSFromFile(*cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "grpcdemo:", err)
			return 1
		}
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	healthpb.RegisterHealthServer(srv, health.NewServer()) // "" and every service: SERVING
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcdemo:", err)
		return 1
	}
	fmt.Println("listening on", ln.Addr())
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		srv.GracefulStop()
	}()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "grpcdemo:", err)
		return 1
	}
	return 0
}

// cases are the interop client's standard test cases, by their -test_case names.
var cases = map[string]func(context.Context, *grpc.ClientConn){
	"empty_unary": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoEmptyUnaryCall(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"large_unary": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoLargeUnaryCall(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"client_streaming": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoClientStreaming(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"server_streaming": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoServerStreaming(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"ping_pong": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoPingPong(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"empty_stream": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoEmptyStream(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"timeout_on_sleeping_server": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoTimeoutOnSleepingServer(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"cancel_after_begin": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoCancelAfterBegin(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"cancel_after_first_response": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoCancelAfterFirstResponse(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"status_code_and_message": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoStatusCodeAndMessage(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"special_status_message": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoSpecialStatusMessage(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"custom_metadata": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoCustomMetadata(ctx, testgrpc.NewTestServiceClient(cc))
	},
	"unimplemented_method": func(ctx context.Context, cc *grpc.ClientConn) { interop.DoUnimplementedMethod(ctx, cc) },
	"unimplemented_service": func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoUnimplementedService(ctx, testgrpc.NewUnimplementedServiceClient(cc))
	},
}

var caseOrder = []string{"empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
	"empty_stream", "timeout_on_sleeping_server", "cancel_after_begin", "cancel_after_first_response",
	"status_code_and_message", "special_status_message", "custom_metadata", "unimplemented_method",
	"unimplemented_service"}

// failed is what a case's grpclog Fatal becomes (grpcdemo's logger panics instead of exiting), so
// that every case runs and reports.
type failed struct{ msg string }

type panicLogger struct{ grpclog.LoggerV2 }

func (panicLogger) Fatal(args ...any)                 { panic(failed{fmt.Sprint(args...)}) }
func (panicLogger) Fatalln(args ...any)               { panic(failed{fmt.Sprintln(args...)}) }
func (panicLogger) Fatalf(format string, args ...any) { panic(failed{fmt.Sprintf(format, args...)}) }

func call(args []string) int {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "the gateway (or the service) to call")
	token := fs.String("token", "", "a JWT sent as authorization: Bearer … on every call")
	list := fs.String("cases", strings.Join(caseOrder, ","), "comma-separated interop cases")
	ca := fs.String("ca", "", "PEM CA certificate: call over TLS, verifying the server with it")
	serverName := fs.String("server-name", "localhost", "with -ca: the name the certificate must carry")
	_ = fs.Parse(args)
	grpclog.SetLoggerV2(panicLogger{grpclog.NewLoggerV2(discard{}, discard{}, os.Stderr)})

	creds := insecure.NewCredentials()
	if *ca != "" {
		var err error
		if creds, err = credentials.NewClientTLSFromFile(*ca, *serverName); err != nil {
			fmt.Fprintln(os.Stderr, "grpcdemo:", err)
			return 1
		}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if *token != "" {
		md := []string{"authorization", "Bearer " + *token}
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
				return inv(metadata.AppendToOutgoingContext(ctx, md...), m, req, reply, cc, o...)
			}),
			grpc.WithChainStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, m string, s grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
				return s(metadata.AppendToOutgoingContext(ctx, md...), d, cc, m, o...)
			}))
	}
	cc, err := grpc.NewClient(*addr, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcdemo:", err)
		return 1
	}
	defer cc.Close()
	bad := 0
	for _, name := range strings.Split(*list, ",") {
		run, ok := cases[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "grpcdemo: unknown case %q (known: %s)\n", name, strings.Join(caseOrder, ", "))
			return 2
		}
		if msg := runOne(run, cc); msg != "" {
			bad++
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			fmt.Printf("FAIL %s: %s\n", name, strings.TrimSpace(msg))
		} else {
			fmt.Printf("PASS %s\n", name)
		}
	}
	if bad > 0 {
		return 1
	}
	return 0
}

func runOne(run func(context.Context, *grpc.ClientConn), cc *grpc.ClientConn) (msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failed)
			if !ok {
				panic(r)
			}
			msg = f.msg
		}
	}()
	run(ctx, cc)
	return ""
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
