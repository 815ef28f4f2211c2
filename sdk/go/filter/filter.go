// Package filter writes Sluice (http-wasm) filters in standard Go, compiled with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o filter.wasm .
//
// A filter is a Handler registered from an init function (a c-shared Go module runs init, never
// main). The host calls HandleRequest for each request; if it returns next=true the request goes
// on down the pipeline and HandleResponse is called with the response and the reqCtx value.
//
// Accessors come in two forms: ones returning string copy the value; ones ending in Bytes return
// a view of the module's scratch buffer, valid only until the next call into this package. Use
// the Bytes forms on hot paths: they make one host call and no allocation.
//
// Outside wasm (go test) the same API talks to an in-process fake host; see package filtertest.
package filter

import (
	"unsafe"

	"github.com/sluice-gateway/sluice/sdk/go/internal/abi"
)

// Handler is a filter. Embed NoResponse for filters that only act on requests.
type Handler interface {
	// HandleRequest inspects or changes the request, or writes a response. Return next=true to
	// continue down the pipeline (HandleResponse is then called with reqCtx), false when resp
	// holds the answer.
	HandleRequest(req Request, resp Response) (next bool, reqCtx uint32)
	// HandleResponse runs after the upstream answered. isError reports that the host failed to
	// produce a response; then only clean up.
	HandleResponse(reqCtx uint32, req Request, resp Response, isError bool)
}

// NoResponse implements HandleResponse as a no-op.
type NoResponse struct{}

// HandleResponse does nothing.
func (NoResponse) HandleResponse(uint32, Request, Response, bool) {}

var handler Handler

// Handle registers the filter. Call it from init.
func Handle(h Handler) { handler = h }

// Features is a set of optional host features (enable_features).
type Features uint32

const (
	// FeatureBufferRequest lets the filter read the request body without consuming it.
	FeatureBufferRequest Features = 1
	// FeatureBufferResponse lets HandleResponse change the status code and body.
	FeatureBufferResponse Features = 2
	// FeatureTrailers gives access to trailers.
	FeatureTrailers Features = 4
)

// Has reports whether every feature of want is in f.
func (f Features) Has(want Features) bool { return f&want == want }

// EnableFeatures asks the host for features and returns the set now enabled. Called from init it
// applies to every request, from HandleRequest to this request only.
func EnableFeatures(f Features) Features { return Features(abi.EnableFeatures(uint32(f))) }

// LogLevel is a host log level.
type LogLevel int32

const (
	LogDebug LogLevel = -1
	LogInfo  LogLevel = 0
	LogWarn  LogLevel = 1
	LogError LogLevel = 2
)

// Log writes msg to the gateway's log.
func Log(level LogLevel, msg string) { abi.Log(int32(level), msg) }

// LogEnabled reports whether messages at level are logged (check before building costly ones).
func LogEnabled(level LogLevel) bool { return abi.LogEnabled(int32(level)) }

// Config returns a copy of the filter's configuration: the HCL `config` object as JSON.
func Config() []byte { return append([]byte(nil), get(abi.GetConfig)...) }

// scratch is the reusable buffer getters read into; it grows when a value does not fit.
var scratch = make([]byte, 2048)

// get runs a buf/buf_limit getter, growing scratch and retrying once when the value is larger.
func get(fn func([]byte) uint32) []byte {
	n := fn(scratch)
	if int(n) > len(scratch) {
		scratch = make([]byte, n)
		n = fn(scratch)
	}
	return scratch[:n]
}

// getList is get for the count_len getters; it returns the NUL-terminated list and its count.
func getList(fn func([]byte) uint64) ([]byte, int) {
	cl := fn(scratch)
	n := uint32(cl)
	if int(n) > len(scratch) {
		scratch = make([]byte, n)
		cl = fn(scratch)
		n = uint32(cl)
	}
	return scratch[:n], int(cl >> 32)
}

// str views b as a string without copying; b must not change while the string is used.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// splitNUL calls fn for each NUL-terminated item of list.
func splitNUL(list []byte, fn func([]byte)) {
	start := 0
	for i, c := range list {
		if c == 0 {
			fn(list[start:i])
			start = i + 1
		}
	}
}
