package balancer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// The gRPC health-checking protocol (grpc.health.v1.Health/Check, grpc/grpc
// doc/health-checking.md) as an active check: `health_check { type = "grpc" }`. The probe is one
// unary call over HTTP/2 — h2c to a plain target, h2 with ALPN to a tls = true one — on a
// connection of the probe's own, kept between probes. The two messages are tiny and fixed, so
// they are encoded here by hand rather than with generated code (no gRPC module in the gateway):
//
//	message HealthCheckRequest  { string service = 1; }
//	message HealthCheckResponse { ServingStatus status = 1; }  // SERVING = 1
//
// A target is healthy when the call ends with grpc-status 0 and the status is SERVING.

const (
	healthCheckPath  = "/grpc.health.v1.Health/Check"
	servingStatusOK  = 1 // HealthCheckResponse.SERVING
	maxHealthReplies = 64 << 10
)

// newGRPCProbe makes the HTTP/2 client of a target's gRPC health checks.
func newGRPCProbe(addr string, ts tlsSettings, connect time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: connect}
	tr := &http.Transport{
		// Whatever the URL says, the probe dials the target's own address.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		MaxConnsPerHost:        1,
		IdleConnTimeout:        time.Minute,
		ResponseHeaderTimeout:  0, // each probe's context bounds it
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	var p http.Protocols
	if ts.enabled {
		p.SetHTTP2(true)
		tr.TLSClientConfig = &tls.Config{ServerName: ts.host, RootCAs: ts.roots, MinVersion: tls.VersionTLS12}
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	tr.Protocols = &p
	return tr
}

// healthCheckRequest is the gRPC message of a HealthCheckRequest for service: the 5-byte
// length prefix (not compressed), then field 1 as a length-delimited string.
func healthCheckRequest(service string) []byte {
	msg := []byte{}
	if service != "" {
		msg = append(msg, 1<<3|2) // field 1, wire type 2 (length-delimited)
		msg = binary.AppendUvarint(msg, uint64(len(service)))
		msg = append(msg, service...)
	}
	out := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

var errNotServing = errors.New("not SERVING")

// probeGRPC makes one Health/Check call to t and reports why it failed (nil: SERVING).
func probeGRPC(t *target, hc *HealthCheckConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), hc.Timeout.D())
	defer cancel()
	scheme := "http://"
	if t.tls {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+t.addr+healthCheckPath,
		bytes.NewReader(healthCheckRequest(hc.Service)))
	if err != nil {
		return err
	}
	req.Host = hostHeader(t)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("User-Agent", "sluice-health-check")
	req.Header.Set("Grpc-Timeout", string(appendGRPCTimeout(nil, hc.Timeout.D())))
	resp, err := t.grpcProbe.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthReplies+1))
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if err := checkHealthReply(resp, body); err != nil {
		return &grpcReplyError{err}
	}
	return nil
}

// grpcReplyError is a probe's failure after the target answered: it is up, but not serving.
type grpcReplyError struct{ err error }

func (e *grpcReplyError) Error() string { return e.err.Error() }
func (e *grpcReplyError) Unwrap() error { return e.err }

// checkHealthReply reads a Health/Check reply: nil when it says SERVING.
func checkHealthReply(resp *http.Response, body []byte) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	// grpc-status comes in the trailers, or in the headers of a trailers-only reply.
	status, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if status == "" {
		status, msg = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if status != "0" {
		return fmt.Errorf("grpc-status %q, grpc-message %q", status, msg)
	}
	serving, err := parseHealthCheckResponse(body)
	if err != nil {
		return err
	}
	if serving != servingStatusOK {
		return fmt.Errorf("%w: serving status %d", errNotServing, serving)
	}
	return nil
}

// parseHealthCheckResponse reads the one length-prefixed HealthCheckResponse of a reply and
// returns its status field (0, UNKNOWN, when absent).
func parseHealthCheckResponse(b []byte) (uint64, error) {
	if len(b) < 5 {
		return 0, fmt.Errorf("a reply of %d bytes is no gRPC message", len(b))
	}
	if b[0] != 0 {
		return 0, errors.New("a compressed reply (none was accepted)")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	msg := b[5:]
	if uint64(n) != uint64(len(msg)) {
		return 0, fmt.Errorf("the reply's message is %d bytes, its prefix says %d", len(msg), n)
	}
	var status uint64
	for len(msg) > 0 {
		key, k := binary.Uvarint(msg)
		if k <= 0 {
			return 0, errors.New("a malformed HealthCheckResponse")
		}
		msg = msg[k:]
		field, wire := key>>3, key&7
		switch wire {
		case 0: // varint
			v, k := binary.Uvarint(msg)
			if k <= 0 {
				return 0, errors.New("a malformed HealthCheckResponse")
			}
			msg = msg[k:]
			if field == 1 {
				status = v
			}
		case 1: // 64-bit
			if len(msg) < 8 {
				return 0, errors.New("a malformed HealthCheckResponse")
			}
			msg = msg[8:]
		case 2: // length-delimited
			l, k := binary.Uvarint(msg)
			if k <= 0 || l > uint64(len(msg)-k) {
				return 0, errors.New("a malformed HealthCheckResponse")
			}
			msg = msg[k+int(l):]
		case 5: // 32-bit
			if len(msg) < 4 {
				return 0, errors.New("a malformed HealthCheckResponse")
			}
			msg = msg[4:]
		default:
			return 0, fmt.Errorf("a HealthCheckResponse with wire type %d", wire)
		}
	}
	return status, nil
}
