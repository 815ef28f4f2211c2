//go:build race

package wasm

// raceEnabled skips allocation checks: the race detector allocates.
const raceEnabled = true
