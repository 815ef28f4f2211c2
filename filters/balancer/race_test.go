//go:build race

package balancer

// The race detector's instrumentation allocates: allocation tests are skipped under it.
const raceEnabled = true
