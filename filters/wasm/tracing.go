package wasm

import (
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/tetratelabs/wazero/api"
)

// tracedCall calls the guest's fn and, when the request is traced, records the time spent in
// the guest on the filter phase's span (sluice.wasm.guest_us). Requests not sampled read no
// clock.
func tracedCall(c *engine.Ctx, in *instance, fn api.Function) error {
	if !c.Recording() {
		return in.call(fn)
	}
	start := time.Now()
	err := in.call(fn)
	c.AnnotateInt("sluice.wasm.guest_us", time.Since(start).Microseconds())
	return err
}
