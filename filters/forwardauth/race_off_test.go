//go:build !race

package forwardauth

const raceEnabled = false
