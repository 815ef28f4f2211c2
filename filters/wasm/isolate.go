package wasm

import (
	"fmt"

	"github.com/sluice-gateway/sluice/filters/wasm/interrupt"
)

// prepareIsolation checks that the platform and the module allow isolation = "request" and
// returns the module rewritten to export its mutable globals, whose count it records in f.
func prepareIsolation(f *Filter, bin []byte) ([]byte, error) {
	if err := isolationSupported(); err != nil {
		return nil, err
	}
	out, n, err := interrupt.ExportGlobals(bin)
	if err != nil {
		return nil, fmt.Errorf(`isolation = "request": %w`, err)
	}
	f.globals = n
	return out, nil
}
