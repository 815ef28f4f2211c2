package balancer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/sluice-gateway/sluice/engine"
)

// failReason is why an upstream attempt failed, as metrics count it and the response flags say.
type failReason uint8

const (
	failReasonNone failReason = iota
	failConnectRefused
	failTimeoutReason
	failResetReason
	failTLSReason
	fail5xx
	nFailReasons
)

var failReasonNames = [nFailReasons]string{"", "connect_refused", "timeout", "reset", "tls", "5xx"}

// failFlags are the response flags of each reason.
var failFlags = [nFailReasons]engine.RespFlags{0, engine.FlagUpstreamConnFail, engine.FlagUpstreamTimeout,
	engine.FlagUpstreamReset, engine.FlagUpstreamTLS, engine.FlagUpstream5xx}

// reasonOf classifies an attempt's outcome: its failure and error, or the status it got.
func reasonOf(fail failure, err error, status int) failReason {
	switch fail {
	case failNone:
		if status >= 500 {
			return fail5xx
		}
		return failReasonNone
	case failTimeout:
		return failTimeoutReason
	case failConnect:
		if isTLSError(err) {
			return failTLSReason
		}
		var de *dialError
		if errors.As(err, &de) && classify(de.err) == failTimeout {
			return failTimeoutReason // the connect timeout
		}
		return failConnectRefused
	case failReset:
		return failResetReason
	}
	return failReasonNone
}

// isTLSError reports whether err came from the TLS handshake with the upstream.
func isTLSError(err error) bool {
	var (
		alert   tls.AlertError
		record  tls.RecordHeaderError
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		hs      *tlsHandshakeError
	)
	return errors.As(err, &hs) || errors.As(err, &alert) || errors.As(err, &record) || errors.As(err, &verify) ||
		errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}

// tlsHandshakeError marks a failed TLS handshake with a target (dialer.dial), whatever crypto/tls
// returned: some of its failures are plain errors.
type tlsHandshakeError struct{ err error }

func (e *tlsHandshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsHandshakeError) Unwrap() error { return e.err }

// retryReason is what a retry retried past.
type retryReason uint8

const (
	retryConnectRefused retryReason = iota
	retryTimeout
	retryReset
	retryTLS
	retry5xx
	retryStatus
	retryGRPC
	nRetryReasons
)

var retryReasonNames = [nRetryReasons]string{"connect_refused", "timeout", "reset", "tls", "5xx", "status", "grpc"}

// retryReasonOf is the retry reason of an attempt that failed for r (failReasonNone: it got
// a status that retry.on names, or a grpc-status that retry.grpc_on names when grpc).
func retryReasonOf(r failReason, grpc bool) retryReason {
	switch r {
	case failConnectRefused:
		return retryConnectRefused
	case failTimeoutReason:
		return retryTimeout
	case failResetReason:
		return retryReset
	case failTLSReason:
		return retryTLS
	case fail5xx:
		if grpc {
			return retryGRPC
		}
		return retry5xx
	}
	if grpc {
		return retryGRPC
	}
	return retryStatus
}

// flagsOf are the response flags of a request whose attempts ended with fail and err and no
// response to relay.
func flagsOf(fail failure, err error) engine.RespFlags {
	switch {
	case errors.Is(err, errClientGone):
		return engine.FlagClientGone
	case fail == failClient:
		return engine.BodyErrorFlags(err)
	case errors.Is(err, errNoFreeConns), errors.Is(err, errCircuitOpen):
		return engine.FlagCircuitOpen
	}
	return failFlags[reasonOf(fail, err, 0)]
}
