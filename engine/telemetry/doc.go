// Package telemetry turns the `telemetry` block into OpenTelemetry tracing and Prometheus metrics
// for the gateway's requests.
//
// Tracing: every request gets a server span; every filter phase a child span named after the
// stage ("jwt request", "wasm:auth response") with its verdict; every upstream attempt a client
// span (retries are siblings carrying http.request.resend_count). Attributes follow the
// OpenTelemetry HTTP semantic conventions. W3C Trace Context is honoured: a single valid incoming
// traceparent is continued (its sampled flag decides sampling), a malformed or repeated one starts
// a new trace, repeated tracestate headers are combined and an invalid list is dropped; the
// upstream receives a traceparent whose parent is the gateway's client span. Traces without a
// parent are sampled at traces.sample_ratio.
//
// Unsampled requests never touch the OpenTelemetry SDK: the observer parses and writes the
// headers itself and c.Context carries a pooled non-recording span, so the whole unsampled span
// tree and its propagation cost a few hundred nanoseconds and no allocation. Sampled requests use
// the SDK with a batching processor whose queue is bounded: a collector that is down or slow
// makes the exporter drop spans, never block requests.
//
// Export to an OpenTelemetry Collector, Jaeger (which accepts OTLP/HTTP on port 4318 since 1.35:
// `docker run -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one`) or testbed/cmd/otlpreceiver:
//
//	telemetry {
//	  service_name = "sluice"
//	  traces {
//	    exporter     = "otlp"                  # otlp | stdout | none
//	    endpoint     = "http://127.0.0.1:4318" # the OTLP/HTTP base URL; /v1/traces is added
//	    sample_ratio = 0.1
//	    response_header = "X-Trace-Id"
//	  }
//	}
//
// Metrics (served by the admin listener at /metrics from engine/metrics.Registry) are always on:
// sluice_requests_total{pipeline,method,code_class,code,source},
// sluice_request_duration_seconds{pipeline,method,code_class} and the body byte counters
// (engine/metrics.RequestSeries), sluice_config_reloads_total{result},
// sluice_config_last_reload_success_timestamp_seconds and sluice_build_info; README.md's
// observability section lists every metric of the gateway.
//
// Use: t, err := telemetry.New(&spec.Telemetry, log); t.Attach(gw) for each built gateway;
// telemetry.ConfigReloaded(ok) after each reload; t.Shutdown(ctx) after the server stopped.
package telemetry
