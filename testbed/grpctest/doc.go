// Package grpctest runs gRPC through a real Sluice gateway in tests: the grpc-go interoperability
// suite (google.golang.org/grpc/interop) against interop.NewTestServer behind the gateway, over
// h2c and TLS, with and without a jwt + rate_limit pipeline. It lives apart from the gateway's
// packages so that the gRPC module's test service is never linked into the sluice binary.
package grpctest
