//go:build race

package engine_test

// raceOn: the race detector is on (large streaming tests copy less).
const raceOn = true
