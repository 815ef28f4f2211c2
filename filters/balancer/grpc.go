package balancer

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// gRPC calls through the balancer: the client's grpc-timeout bounds the upstream call (and is
// forwarded reduced by the time already spent), and retry.grpc_on retries a call whose upstream
// answered with a listed gRPC status in a trailers-only response.

var hdrGRPCTimeout = []byte("Grpc-Timeout")

// maxGRPCTimeoutDigits is the gRPC protocol's limit on a grpc-timeout value's digits.
const maxGRPCTimeoutDigits = 8

// parseGRPCTimeout parses a grpc-timeout value: 1 to 8 ASCII digits and a unit, H (hours), M
// (minutes), S (seconds), m (milliseconds), u (microseconds) or n (nanoseconds). Anything else
// is not a timeout (ok false): the gRPC protocol gives it no meaning, and grpc-go servers ignore
// it the same way.
func parseGRPCTimeout(v []byte) (d time.Duration, ok bool) {
	if len(v) < 2 || len(v) > maxGRPCTimeoutDigits+1 {
		return 0, false
	}
	var n int64
	for _, b := range v[:len(v)-1] {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	// 99999999 hours overflows time.Duration (about 292 years): such a deadline is no bound.
	if n > int64(maxDuration/unit) {
		return maxDuration, true
	}
	return time.Duration(n) * unit, true
}

const maxDuration = time.Duration(1<<63 - 1)

// appendGRPCTimeout appends d as a grpc-timeout value in the finest unit that fits in 8 digits,
// rounded up (an upstream never gets less time than the gateway will wait). d must be positive.
func appendGRPCTimeout(dst []byte, d time.Duration) []byte {
	const limit = 1e8 // 8 digits
	units := [...]struct {
		d time.Duration
		c byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}
	for i, u := range units {
		n := d / u.d
		if d%u.d != 0 {
			n++ // without d+u.d-1, which overflows near the largest durations
		}
		if n < limit || i == len(units)-1 {
			return append(appendUint(dst, uint64(min(n, limit-1))), u.c)
		}
	}
	return dst
}

func appendUint(dst []byte, n uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// grpcDeadline returns the deadline a gRPC call's grpc-timeout sets, counted from start, and
// whether the request has one.
func grpcDeadline(h *fasthttp.RequestHeader, start time.Time) (time.Time, bool) {
	v := h.PeekBytes(hdrGRPCTimeout)
	if len(v) == 0 {
		return time.Time{}, false
	}
	d, ok := parseGRPCTimeout(v)
	if !ok {
		return time.Time{}, false
	}
	return start.Add(d), true
}

// setGRPCTimeout replaces the request's grpc-timeout with the time left until deadline, so the
// upstream stops working on the call when the gateway stops waiting for it.
func setGRPCTimeout(c *engine.Ctx, x *exchange, now, deadline time.Time) {
	left := deadline.Sub(now)
	if left <= 0 {
		left = time.Nanosecond
	}
	x.grpcTimeout = appendGRPCTimeout(x.grpcTimeout[:0], left)
	c.Request.Header.SetBytesKV(hdrGRPCTimeout, x.grpcTimeout)
}

// grpcDeadlineSlack bounds how late a grpc-timeout fires (see deadlineSlackDivisor): a fraction
// of the call's own timeout, never more than the upstream's usual slack.
func grpcDeadlineSlack(u *Upstream, start, deadline time.Time) time.Duration {
	return min(u.deadlineSlack, deadline.Sub(start)/deadlineSlackDivisor)
}

// The gRPC status codes retry.grpc_on names (the names of the gRPC protocol, in lower case;
// Envoy's retry_on accepts the same five).
var grpcRetryCodes = map[string]int{
	"cancelled":          engine.GRPCCancelled,
	"deadline_exceeded":  engine.GRPCDeadlineExceeded,
	"resource_exhausted": engine.GRPCResourceExhausted,
	"internal":           engine.GRPCInternal,
	"unavailable":        engine.GRPCUnavailable,
}

// GRPCRetryConditions lists what retry.grpc_on accepts.
var GRPCRetryConditions = []string{"cancelled", "deadline_exceeded", "internal", "resource_exhausted", "unavailable"}

func parseGRPCRetryOn(s string) (int, error) {
	code, ok := grpcRetryCodes[s]
	if !ok {
		return 0, fmt.Errorf("unknown gRPC retry condition %q: use %s", s, strings.Join(GRPCRetryConditions, ", "))
	}
	return code, nil
}

var hdrGRPCStatus = []byte("Grpc-Status")

// trailersOnlyStatus returns the gRPC status of a trailers-only response — grpc-status in the
// header section and no body — or -1. A status that comes in trailers, after a body, is never
// waited for: the body has started toward the client by then, and holding it to read the
// trailer would hold every streamed response.
func trailersOnlyStatus(resp *fasthttp.Response, body *upstreamBody) int {
	if resp.StatusCode() != fasthttp.StatusOK || len(resp.Body()) != 0 {
		return -1
	}
	if body != nil && !body.empty() {
		return -1 // a body on its way
	}
	v := resp.Header.PeekBytes(hdrGRPCStatus)
	if len(v) == 0 || len(v) > 2 {
		return -1
	}
	n := 0
	for _, b := range v {
		if b < '0' || b > '9' {
			return -1
		}
		n = n*10 + int(b-'0')
	}
	return n
}

// shouldRetryGRPC decides whether a gRPC call answered trailers-only with a status of grpc_on
// is tried again on another target. gRPC calls are POSTs: a status listed in grpc_on is retried
// whatever the method (the operator listed it), but only while the request body can be sent
// again: held, or streamed and kept by x.replay.
func (u *Upstream) shouldRetryGRPC(c *engine.Ctx, x *exchange, body *upstreamBody, attempt int, deadline time.Time, now int64) bool {
	if u.on.grpc == 0 || attempt >= x.attempts || now >= deadline.UnixNano() || (c.Request.IsBodyStream() && x.replay == nil) {
		return false
	}
	code := trailersOnlyStatus(c.Response, body)
	if code < 0 || code > 31 || u.on.grpc&(1<<code) == 0 {
		return false
	}
	if !u.budget.allow(now) {
		u.metrics.budgetExhausted.Inc()
		return false
	}
	return true
}

// empty reports whether the body is known to be empty before it is read: an HTTP/2 response
// whose HEADERS frame ended the stream (net/http then reports a zero ContentLength).
func (b *upstreamBody) empty() bool {
	if h, ok := b.r.(*h2RespBody); ok {
		return h.call.resp.ContentLength == 0
	}
	return false
}

// maxGRPCReplay bounds what is kept of a gRPC call's streamed request body for a retry on
// grpc_on: a unary call's message, or the first messages of a stream. A call that sent more is
// not retried.
const maxGRPCReplay = 64 << 10

var errReplayLost = errors.New("the request body was not kept whole for a retry (over 64 KiB)")

// replaySource is a gRPC call's streamed request body (over HTTP/2 a gRPC request has no
// Content-Length, so the server streams it) shared by the call's attempts: each attempt reads it
// through a view of its own, which first replays what earlier attempts read (kept, up to
// maxGRPCReplay bytes), then reads on. An abandoned attempt's transport may still be inside a
// read of the client's stream (net/http closes a request body concurrently with its reads):
// whatever that read returns is kept for the next attempt, and the source is read by one view
// at a time, never under the lock, so a view waiting for it never blocks the others. The
// source outlives the balancer's Serve (a stream's body is read until the call ends), so it
// belongs to the call's goroutines, not to the pooled exchange.
type replaySource struct {
	mu      sync.Mutex
	cond    sync.Cond
	src     io.Reader
	buf     []byte      // the bytes read from src so far, unless over
	total   int         // bytes read from src
	over    bool        // the latest attempt read past maxGRPCReplay: buf is dropped
	reading bool        // a view is inside src.Read
	err     error       // src's final error (io.EOF included)
	live    *replayView // the latest attempt's view
}

type replayView struct {
	s   *replaySource
	pos int // bytes of the body this view has returned
}

func newReplaySource(src io.Reader) *replaySource {
	s := &replaySource{src: src}
	s.cond.L = &s.mu
	return s
}

// view returns a reader of the whole body for the next attempt.
func (s *replaySource) view() *replayView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = &replayView{s: s}
	return s.live
}

// lost reports whether the body can no longer be sent again whole.
func (s *replaySource) lost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.over
}

func (v *replayView) Read(p []byte) (int, error) {
	s := v.s
	s.mu.Lock()
	for {
		if v.pos < s.total {
			if s.over {
				s.mu.Unlock()
				return 0, errReplayLost
			}
			n := copy(p, s.buf[v.pos:])
			v.pos += n
			s.mu.Unlock()
			return n, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		if !s.reading {
			break
		}
		s.cond.Wait() // another view is reading the client's stream: its bytes are kept
	}
	s.reading = true
	live := v == s.live
	s.mu.Unlock()
	n, err := s.src.Read(p)
	s.mu.Lock()
	s.reading = false
	if n > 0 {
		switch {
		case s.over:
		case live && len(s.buf)+n > maxGRPCReplay:
			// The latest attempt needs none of it; a later one could not be sent whole.
			s.over, s.buf = true, nil
		default:
			s.buf = append(s.buf, p[:n]...)
		}
		s.total += n
		v.pos += n
	}
	if err != nil {
		s.err = err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return n, err
}
