package telemetry

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
)

// The SDK's own errors reach the gateway's log, one line per errorEvery with a count of those
// suppressed, not stderr.
func TestSDKErrorsRateLimited(t *testing.T) {
	prev := otel.GetErrorHandler()
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	h := &recordHandler{}
	InstallErrorHandler(slog.New(h))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(handleSDKError)) // another test may have installed it first
	errorLimiter.Lock()
	errorLimiter.last, errorLimiter.suppressed = errorLimiter.last.AddDate(-1, 0, 0), 0
	errorLimiter.Unlock()
	for i := 0; i < 50; i++ {
		otel.Handle(errors.New(`Post "http://otel:pw@collector:4318/v1/logs": connection refused`))
	}
	lines := h.lines()
	if len(lines) != 1 {
		t.Fatalf("%d log lines for 50 errors, want 1: %q", len(lines), lines)
	}
	if !strings.Contains(lines[0], "telemetry error") || strings.Contains(lines[0], ":pw@") {
		t.Errorf("log line %q: want the error, without the URL's credentials", lines[0])
	}
}

func TestParseOTLPHeaders(t *testing.T) {
	h := map[string]string{}
	parseOTLPHeaders(h, "a=1, b = two%20words ,bad,=x,c=%zz")
	if len(h) != 2 || h["a"] != "1" || h["b"] != "two words" {
		t.Errorf("parsed %v", h)
	}
}
