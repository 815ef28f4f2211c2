//go:build wasip1

package filter

// The guest's exports. They live in this package so a filter's main package only calls Handle.

//go:wasmexport handle_request
func handleRequest() uint64 {
	if handler == nil {
		panic("filter: no handler registered: call filter.Handle from init")
	}
	next, reqCtx := handler.HandleRequest(Request{}, Response{})
	if !next {
		return 0
	}
	return uint64(reqCtx)<<32 | 1
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {
	handler.HandleResponse(reqCtx, Request{}, Response{}, isError == 1)
}
