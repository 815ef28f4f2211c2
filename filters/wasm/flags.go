package wasm

import (
	"errors"

	"github.com/sluice-gateway/sluice/engine"
)

// failFlag is the response flag of a failed guest call: UO when the pool had no instance to
// give (a concurrency limit, as a circuit breaker's), WF when the guest trapped, ran past its
// timeout or could not be called.
func failFlag(err error) engine.RespFlags {
	if errors.Is(err, errPoolFull) {
		return engine.FlagCircuitOpen
	}
	return engine.FlagWasmFailure
}
