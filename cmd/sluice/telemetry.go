package main

import "github.com/sluice-gateway/sluice/engine"

// telemetryHooks connects the telemetry package to the run loop.
type telemetryHooks struct{}

func (r *runner) attachTelemetry(gw *engine.Gateway) error { return nil }
func (r *runner) shutdownTelemetry()                       {}
func (telemetryHooks) reloaded(ok bool)                    {}
