//go:build race

package rewrite

// raceEnabled: the race detector makes sync.Pool (regexp's, the Ctx pool) drop items, so allocation
// counts mean nothing.
const raceEnabled = true
