package telemetry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
)

// error.type is a low-cardinality name of what went wrong, never a Go type or a message.
func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "connection_refused"},
		{fmt.Errorf("reading: %w", syscall.ECONNRESET), "connection_reset"},
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("upstream: %w", os.ErrDeadlineExceeded), "timeout"},
		{context.Canceled, "canceled"},
		{&net.DNSError{Err: "no such host", Name: "backend.internal"}, "dns"},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "tls"},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "tls"},
		{errors.New("something else"), "_OTHER"},
	} {
		if got := errorType(tc.err); got != tc.want {
			t.Errorf("errorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	for _, tc := range []struct {
		flags  engine.RespFlags
		status int
		want   string
	}{
		{engine.FlagUpstreamTimeout | engine.FlagUpstream5xx, 504, "timeout"},
		{engine.FlagUpstreamConnFail | engine.FlagNoHealthyUpstream, 503, "connection_refused"},
		{engine.FlagUpstreamTLS, 502, "tls"},
		{engine.FlagRateLimited, 429, "rate_limited"},
		{engine.FlagCircuitOpen, 503, "circuit_open"},
		{engine.FlagWasmFailure, 500, "wasm_failure"},
		{engine.FlagUpstream5xx, 502, "502"},
		{0, 500, "500"},
		{0, 0, ""},
	} {
		if got := flagsErrorType(tc.flags, tc.status); got != tc.want {
			t.Errorf("flagsErrorType(%b, %d) = %q, want %q", tc.flags, tc.status, got, tc.want)
		}
	}
}
