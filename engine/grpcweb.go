package engine

// GRPCWebStatus is the grpc-status of a gRPC-Web call whose trailers the grpc_web filter moved
// into the response body, where GRPCStatusOf cannot read them any more (a held body: a streamed
// one's trailers come after the response phases). Status codes are below 256, so storing one
// does not allocate.
var GRPCWebStatus = NewKey[int]("grpc_web.status")
