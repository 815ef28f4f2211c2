package telemetry

import (
	"context"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
)

func TestSignalURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "http://127.0.0.1:4318/v1/traces"},
		{"http://collector:4318", "http://collector:4318/v1/traces"},
		{"http://collector:4318/", "http://collector:4318/v1/traces"},
		{"https://otlp.example.com/custom/traces", "https://otlp.example.com/custom/traces"},
	}
	for _, tt := range tests {
		got, err := signalURL(tt.in, "/v1/traces")
		if err != nil || got != tt.want {
			t.Errorf("signalURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"127.0.0.1:4318", "grpc://x:4317", "http://", "::"} {
		if _, err := signalURL(bad, "/v1/traces"); err == nil {
			t.Errorf("signalURL(%q) accepted", bad)
		}
	}
}

func TestNew(t *testing.T) {
	half := 0.5
	tests := []struct {
		name    string
		cfg     *engine.TelemetryConfig
		tracing bool
		err     bool
	}{
		{"nil config", nil, false, false},
		{"no traces block", &engine.TelemetryConfig{ServiceName: "x"}, false, false},
		{"exporter none", &engine.TelemetryConfig{Traces: &engine.TracesConfig{Exporter: "none"}}, false, false},
		{"stdout", &engine.TelemetryConfig{Traces: &engine.TracesConfig{Exporter: "stdout", SampleRatio: &half}}, true, false},
		{"otlp default endpoint", &engine.TelemetryConfig{Traces: &engine.TracesConfig{Exporter: "otlp"}}, true, false},
		{"otlp bad endpoint", &engine.TelemetryConfig{Traces: &engine.TracesConfig{Exporter: "otlp", Endpoint: "localhost:4318"}}, false, true},
		{"unknown exporter", &engine.TelemetryConfig{Traces: &engine.TracesConfig{Exporter: "zipkin"}}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel, err := New(tt.cfg, nil)
			if (err != nil) != tt.err {
				t.Fatalf("New: %v, want error %v", err, tt.err)
			}
			if err != nil {
				return
			}
			defer tel.Shutdown(context.Background())
			if tel.Tracing() != tt.tracing || tel.Observer() == nil {
				t.Errorf("tracing %v, want %v (observer %v)", tel.Tracing(), tt.tracing, tel.Observer())
			}
		})
	}
}

func TestCanonicalHeader(t *testing.T) {
	for in, want := range map[string]string{"x-trace-id": "X-Trace-Id", "X-TRACE-ID": "X-Trace-Id", "traceid": "Traceid"} {
		if got := string(canonicalHeader(in)); got != want {
			t.Errorf("canonicalHeader(%q) = %q, want %q", in, got, want)
		}
	}
}
