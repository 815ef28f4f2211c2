//go:build !race

package otellog

const raceEnabled = false
