// Package abi is the raw http-wasm "http_handler" host interface as Go functions over byte slices
// and strings. On wasip1 each function is a //go:wasmimport of the real host; elsewhere it is an
// in-process fake host (Fake) so filters can be unit-tested with plain `go test`.
package abi

// Header and body kinds, as numbered by the ABI.
const (
	KindRequest          uint32 = 0
	KindResponse         uint32 = 1
	KindRequestTrailers  uint32 = 2
	KindResponseTrailers uint32 = 3
)
