package telemetry

import (
	"bytes"
	"strconv"

	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// gRPC calls get the RPC attributes of the pinned semantic conventions (v1.37.0, as the rest of
// the package) on their server span, beside the HTTP ones: rpc.system = "grpc", rpc.service and
// rpc.method from the path ("/package.Service/Method"), and rpc.grpc.status_code from the
// response's grpc-status. v1.39 renamed these (rpc.system.name, rpc.method = "Service/Method",
// rpc.response.status_code); they move when the whole code base moves.

// appendRPCAttrs appends the RPC attributes of a gRPC request (path is its raw path).
func appendRPCAttrs(a []attribute.KeyValue, path []byte) []attribute.KeyValue {
	a = append(a, semconv.RPCSystemGRPC)
	p := bytes.TrimPrefix(path, []byte("/"))
	if i := bytes.LastIndexByte(p, '/'); i > 0 && i < len(p)-1 {
		a = append(a, semconv.RPCService(string(p[:i])), semconv.RPCMethod(string(p[i+1:])))
	}
	return a
}

// endRPCSpan sets rpc.grpc.status_code on a gRPC call's server span, and marks the span as an
// error for the codes the RPC conventions count as server errors (the HTTP status, 200 for
// every gRPC answer, says nothing).
func endRPCSpan(sp trace.Span, c *engine.Ctx) {
	code, ok := engine.GRPCStatusOf(c)
	if !ok {
		return
	}
	sp.SetAttributes(semconv.RPCGRPCStatusCodeKey.Int(code))
	switch code {
	case 2, 4, 12, 13, 14, 15: // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
		sp.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(code)))
		sp.SetStatus(codes.Error, "")
	}
}
