package engine

// GRPCWebStatus is the grpc-status of a gRPC-Web call whose trailers the grpc_web filter moved
// into the response body, where GRPCStatusOf cannot read them any more: set by the filter for a
// held body, and at a streamed body's end from what the filter noted (NoteGRPCStatus,
// respfinish.go). Status codes are below 256, so storing one does not allocate.
var GRPCWebStatus = NewKey[int]("grpc_web.status")
