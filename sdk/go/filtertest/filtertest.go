//go:build !wasip1

// Package filtertest runs a filter.Handler natively against an in-process fake host, so a filter
// can be unit-tested with `go test` before it is compiled to Wasm:
//
//	h := filtertest.New()
//	h.Config = []byte(`{"keys":["alpha"]}`)
//	h.ReqHeader = filtertest.Headers("X-API-Key", "alpha")
//	res := filtertest.Run(myFilter{}, nil)
//
// The fake follows the ABI: fit-or-nothing buffers, lower-case header names, NUL-terminated lists.
package filtertest

import (
	"github.com/sluice-gateway/sluice/sdk/go/filter"
	"github.com/sluice-gateway/sluice/sdk/go/internal/abi"
)

// Host is the fake host's state: set the request before Run, read the outcome after it.
type Host = abi.FakeHost

// Field is one header line.
type Field = abi.Field

// New resets the fake host to an empty GET / request and returns it.
func New() *Host { return abi.Reset() }

// Get returns the first value of a header in fields, matched case-insensitively.
func Get(fields []Field, name string) (string, bool) { return abi.Get(fields, name) }

// Result is what HandleRequest returned.
type Result struct {
	Next   bool
	ReqCtx uint32
}

// Run calls h.HandleRequest on the current fake host. If it returns next, upstream (when not nil)
// plays the upstream by writing h's Status, RespHeader and RespBody, and then h.HandleResponse
// runs, as the gateway would do.
func Run(h filter.Handler, upstream func(*Host)) Result {
	host := abi.Fake
	host.StartPhase()
	next, reqCtx := h.HandleRequest(filter.Request{}, filter.Response{})
	if !next {
		return Result{}
	}
	if upstream != nil {
		upstream(host)
	}
	host.StartPhase()
	h.HandleResponse(reqCtx, filter.Request{}, filter.Response{}, false)
	return Result{Next: true, ReqCtx: reqCtx}
}

// Headers builds header fields from name/value pairs.
func Headers(pairs ...string) []Field {
	out := make([]Field, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Field{Name: pairs[i], Value: pairs[i+1]})
	}
	return out
}
