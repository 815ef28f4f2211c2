// Command grpcupstream is the gRPC upstream of the load benchmark (testbed/bench): grpc-go's
// interop TestService (the server the gRPC interop suite runs against) over h2c, so that gRPC
// calls can be measured direct, through Sluice and through nginx's grpc_pass.
//
//	grpcupstream -listen 127.0.0.1:18190
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18190", "address (h2c)")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcupstream:", err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		srv.Stop()
	}()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "grpcupstream:", err)
		os.Exit(1)
	}
}
