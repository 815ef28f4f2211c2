package balancer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// HTTP/2 to targets: an upstream's protocol = "h2" (over TLS, chosen by ALPN), "h2c" (cleartext,
// prior knowledge) or "auto" (ALPN on TLS targets: h2 when the target offers it, else
// HTTP/1.1; cleartext targets stay on HTTP/1.1). Such a target is served by net/http's
// Transport instead of the pooled HTTP/1.1 exchange (roundtrip.go): its connections carry many
// streams each, as many as the target's SETTINGS_MAX_CONCURRENT_STREAMS allows, and the
// Transport opens another connection, up to max_connections_per_target, when they are all in
// use. Everything above the exchange (selection, retries and their budget, outlier ejection,
// health checks, metrics, the response phases) is the same for both.

const (
	protocolHTTP1 = "http1"
	protocolH2    = "h2"
	protocolH2C   = "h2c"
	protocolAuto  = "auto"
)

var protocols = []string{protocolHTTP1, protocolH2, protocolH2C, protocolAuto}

// validateProtocol checks protocol against the targets' tls settings.
func (c *Config) validateProtocol() []error {
	if !contains(protocols, c.Protocol) {
		return []error{engine.FieldErr("protocol", "unknown protocol %q: use http1, h2, h2c or auto", c.Protocol)}
	}
	for _, t := range c.Targets {
		switch {
		case c.Protocol == protocolH2 && !t.TLS:
			return []error{engine.FieldErr("protocol", "protocol \"h2\" is HTTP/2 over TLS and target %q has no tls = true: "+
				"use \"h2c\" for cleartext HTTP/2 (prior knowledge)", t.Address)}
		case c.Protocol == protocolH2C && t.TLS:
			return []error{engine.FieldErr("protocol", "protocol \"h2c\" is cleartext HTTP/2 and target %q has tls = true: "+
				"use \"h2\" (or \"auto\")", t.Address)}
		}
	}
	return nil
}

// h2StreamsPerConn is what a target's request slots assume of each HTTP/2 connection: an
// HTTP/2 target takes up to max_connections_per_target × this many requests at once (the
// Transport itself never opens more than max_connections_per_target connections).
const h2StreamsPerConn = 100

// h2IdleTimeout closes an HTTP/2 connection that carried no stream for this long. Unlike an
// HTTP/1.1 connection, an idle one is closed by the upstream with GOAWAY, never under a request,
// so it may stay longer than the pool's 2–4 s.
const h2IdleTimeout = 60 * time.Second

// h2Client is an HTTP/2 (or, under "auto", ALPN-chosen) client for one target.
type h2Client struct {
	rt      *http.Transport // makes the connections of pool and probes
	pool    *h2Pool
	probes  *h2Pool // the health checks' own connection: probes never wait behind requests
	scheme  string  // "https" or "http"
	addr    string
	connect time.Duration
	tls     *tls.Config // nil: h2c
	needH2  bool        // protocol "h2": a target that does not choose h2 by ALPN is refused
}

// usesH2Client reports whether a target (with TLS or not) is served by the HTTP/2 client under
// protocol.
func usesH2Client(protocol string, tls bool) bool {
	switch protocol {
	case protocolH2, protocolAuto:
		return tls
	case protocolH2C:
		return !tls
	}
	return false
}

// newH2Client returns the client of a target under protocol, or nil for a target that stays on
// the HTTP/1.1 exchange.
func newH2Client(protocol, addr string, ts tlsSettings, connect, slotWait time.Duration, maxConns int) *h2Client {
	if !usesH2Client(protocol, ts.enabled) {
		return nil
	}
	var p http.Protocols
	h := &h2Client{addr: addr, connect: connect, scheme: "http"}
	switch protocol {
	case protocolH2C:
		p.SetUnencryptedHTTP2(true)
	case protocolH2:
		p.SetHTTP2(true)
		h.needH2 = true
		h.tls = clientTLS(ts, []string{"h2"})
	default: // auto, on a TLS target
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		h.tls = clientTLS(ts, []string{"h2", "http/1.1"})
	}
	if h.tls != nil {
		h.scheme = "https"
	}
	h.rt = &http.Transport{
		Proxy:              nil, // never the environment's HTTP_PROXY: the target is dialled as configured
		DialContext:        h.dial,
		DialTLSContext:     h.dial,
		DisableCompression: true, // the client's Accept-Encoding goes through as it is
		// An HTTP/2 connection that carried no stream for this long closes itself.
		IdleConnTimeout: h2IdleTimeout,
		// The HTTP/1.1 exchange reads a response head into a 16 KiB buffer: the same bound.
		MaxResponseHeaderBytes: upstreamReadBuffer,
		Protocols:              &p,
		HTTP2: &http.HTTP2Config{
			// A connection that has been silent this long is pinged, and closed if the
			// ping is not answered within the connect timeout: a dead peer is found
			// without waiting for a request's timeout.
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     max(connect, time.Second),
		},
	}
	h.pool = newH2Pool(h.rt, h.scheme, addr, maxConns, slotWait)
	h.probes = newH2Pool(h.rt, h.scheme, addr, 1, connect)
	return h
}

// dial opens a connection to the target within the connect timeout: TCP, then TLS when the
// target has tls = true. Every failure is a *dialError: nothing was sent.
func (h *h2Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, h.connect)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, &dialError{err}
	}
	if h.tls == nil {
		w := newH2Wire(conn)
		noteWire(ctx, w)
		return w, nil
	}
	tc := tls.Client(conn, h.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, &dialError{fmt.Errorf("TLS handshake: %w", err)}
	}
	if np := tc.ConnectionState().NegotiatedProtocol; h.needH2 && np != "h2" {
		conn.Close()
		return nil, &dialError{fmt.Errorf("the target did not choose h2 by ALPN (it chose %q): use protocol = \"auto\" for targets that may speak HTTP/1.1", np)}
	}
	return tc, nil
}

// closeIdle closes the connections that carry no stream.
func (h *h2Client) closeIdle() {
	h.pool.closeIdle()
	h.probes.closeIdle()
}

// close closes the idle connections now and the others when their last stream ends.
func (h *h2Client) close() {
	h.pool.close()
	h.probes.close()
}

// maxUnprocessedRetries bounds how often a request the target did not process (a refused
// stream, a connection going away) is sent again on another connection, not counting as a retry.
const maxUnprocessedRetries = 3

// roundTrip sends req on a connection of pool; a request the target did not process goes again
// on another connection while its body can be sent again (rewind makes a new one; nil: it cannot).
func (h *h2Client) roundTrip(pool *h2Pool, req *http.Request, rewind func() io.ReadCloser) (*http.Response, error) {
	for n := 0; ; n++ {
		cc, err := pool.get(req.Context())
		if err != nil {
			if req.Body != nil {
				// No connection took the request: its body is closed here, as a RoundTrip
				// would have (h2Call.finish waits for that).
				_ = req.Body.Close()
			}
			return nil, err
		}
		if b, ok := req.Body.(*h2ReqBody); ok && b.mayWait {
			// Only a body that may wait flushes the wire (h2ReqBody.Read): a held one, a
			// gRPC call's, needs no lookup under the pool's lock.
			b.call.wire.Store(pool.wire(cc))
		}
		resp, err := cc.RoundTrip(req)
		if err == nil || n == maxUnprocessedRetries || !unprocessed(err) {
			return resp, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			var body io.ReadCloser
			if rewind != nil {
				body = rewind()
			}
			if body == nil {
				return nil, err
			}
			req.Body = body
		}
	}
}

// h2Call is one exchange with an HTTP/2 target: its context, its response, and the request
// bodies the Transport holds, which read the client's request and must be closed before the
// request is released.
type h2Call struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	// timer cancels ctx when the attempt's time is up: at its deadline until a body streams,
	// then after idle without progress either way (progress; paused while the response body
	// read last goes to the client), no later than end (the server's stream_timeout; zero:
	// none).
	timer    *time.Timer
	idle     time.Duration
	end      time.Time
	timedOut atomic.Bool
	// due is when the timer fires (Unix nanoseconds), moved by progress.
	due  atomic.Int64
	resp *http.Response
	up   *fasthttp.Response // receives the trailers at the end of the body
	url  url.URL            // the request's URL, allocated with the call
	// rb and ub are the response body as roundTripH2 returns it, allocated with the call
	rb h2RespBody
	ub upstreamBody
	// streamRead: a read of a streamed request body started, so the request cannot be sent
	// again.
	streamRead atomic.Bool
	// wire is the attempt's connection when cleartext: a body that may wait flushes its
	// HEADERS first (h2wire.go).
	wire atomic.Pointer[h2Wire]

	mu     sync.Mutex
	bodies []*h2ReqBody
	// bodyErr: the client's streamed body failed (a *clientBodyError). Its failure may also
	// end the client's context (engine: the HTTP/2 handler's), which the Transport may report
	// first: the exchange's error is this one then.
	bodyErr error
}

// bodyCloseWait bounds the wait for the Transport to close a request body after the exchange
// was cancelled. net/http closes it on its own goroutine, at once after a cancel.
const bodyCloseWait = 5 * time.Second

// finish ends the exchange: the response body is closed (an unfinished stream is reset), the
// context cancelled, and the Transport's request bodies waited for.
func (k *h2Call) finish() {
	if k.resp != nil {
		_ = k.resp.Body.Close()
	}
	k.timer.Stop()
	k.cancel()
	k.mu.Lock()
	bodies := k.bodies
	k.bodies = nil
	k.mu.Unlock()
	var wait *time.Timer
	for _, b := range bodies {
		select {
		case <-b.closed:
			continue // the usual case: no timer made for it
		default:
		}
		if wait == nil {
			wait = time.NewTimer(bodyCloseWait)
			defer wait.Stop()
		}
		select {
		case <-b.closed:
		case <-wait.C:
			return // the Transport broke its contract; the request is released anyway
		}
	}
}

// body returns a request body for the Transport, over r.
func (k *h2Call) body(r io.Reader, stream bool) *h2ReqBody {
	_, held := r.(*bytes.Reader)
	b := &h2ReqBody{r: r, call: k, stream: stream, mayWait: !held, closed: make(chan struct{})}
	k.mu.Lock()
	k.bodies = append(k.bodies, b)
	k.mu.Unlock()
	return b
}

// err turns an error of the exchange into one that classify understands.
func (k *h2Call) err(err error) error {
	k.mu.Lock()
	bodyErr := k.bodyErr
	k.mu.Unlock()
	var ce *clientBodyError
	switch {
	case bodyErr != nil:
		return fmt.Errorf("%w (%w)", bodyErr, err)
	case engine.BodyFailure(k.parent) != nil:
		// The client's body failed and ended its context before the Transport's read of it
		// returned the error: the same failure, seen first through the context.
		return fmt.Errorf("%w (%w)", &clientBodyError{engine.BodyFailure(k.parent)}, err)
	case k.parent.Err() != nil:
		return fmt.Errorf("%w: %w", errClientGone, err)
	case errors.As(err, &ce):
		return err // the client's body failed: not the target's doing
	case k.timedOut.Load() || time.Now().UnixNano() >= k.due.Load():
		// Past the attempt's time even when the timer has not run yet: an upstream that got a
		// grpc-timeout ends the call itself at the same instant (grpc-go resets the stream),
		// and whichever timer fires first under load, the answer is a timeout, not a reset.
		return fmt.Errorf("%w: %w", fasthttp.ErrTimeout, err)
	}
	return err
}

// progress moves the exchange's end to idle from now (no later than the stream's end): a body
// streaming either way made progress.
func (k *h2Call) progress() {
	d := k.idle
	if !k.end.IsZero() {
		d = min(d, time.Until(k.end))
	}
	k.due.Store(time.Now().Add(d).UnixNano())
	k.timer.Reset(d)
}

// pause stops the timer while what the response body's last read returned goes to the client:
// the client's pace is write_timeout's to bound, not the upstream's timeout, as for an HTTP/1.1
// upstream, whose deadline is armed only while a read waits (armIdle). The next read arms it
// again, and so does a streamed request body's progress meanwhile.
func (k *h2Call) pause() {
	k.due.Store(math.MaxInt64)
	k.timer.Stop()
}

// h2ReqBody is a request body as the Transport reads it.
type h2ReqBody struct {
	r      io.Reader
	call   *h2Call
	stream bool
	// mayWait: a read may wait on the client (a stream, or a replay of one still arriving);
	// a held body's reads return at once.
	mayWait bool
	once    sync.Once
	closed  chan struct{}
}

func (b *h2ReqBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, io.ErrClosedPipe // an abandoned attempt's: the client's request is another's now
	default:
	}
	if b.stream {
		// Marked before the read, not after: a read still waiting for the client when the
		// attempt is abandoned would take bytes a replay then misses, or race with its reads.
		b.call.streamRead.Store(true)
	}
	if w := b.call.wire.Load(); b.mayWait && w != nil {
		w.flush() // the request's HEADERS go before a read that may wait on the client
	}
	n, err := b.r.Read(p)
	if n > 0 && b.stream {
		b.call.progress()
	}
	if err != nil && err != io.EOF && b.stream {
		// The client's streamed body failed (engine: over max_body_bytes, a timeout, a
		// client gone): the Transport resets the upstream stream and RoundTrip returns this.
		err = &clientBodyError{err}
		b.call.mu.Lock()
		b.call.bodyErr = err
		b.call.mu.Unlock()
	}
	return n, err
}

func (b *h2ReqBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// h2RespBody reads the response body and, at its end, hands the trailers to call.up.
type h2RespBody struct {
	call *h2Call
	eof  bool
	// streams: the body goes to the client as it comes whatever holdOrStream finds (gRPC,
	// server-sent events, or a length too large to hold); ub.trailersTo is set when
	// holdOrStream gave up holding one of unknown length.
	streams bool
	ub      *upstreamBody
}

func (b *h2RespBody) Read(p []byte) (int, error) {
	live := b.streams || b.ub.trailersTo != nil
	if live {
		// A body streaming to the client may run long: the attempt's timeout now measures
		// how long a read waits for the upstream (the whole exchange's, while the body is
		// read to be held), not how long the client takes for what was read (pause).
		b.call.progress()
	}
	n, err := b.call.resp.Body.Read(p)
	if live {
		b.call.pause()
	}
	if err == io.EOF {
		if !b.eof {
			b.eof = true
			// Into the client's response at once when the body streams to it (trailersTo):
			// upstreamBody.Read's copy from up then finds none to copy.
			dst := &b.call.up.Header
			if b.ub.trailersTo != nil {
				dst = b.ub.trailersTo
			}
			trailersInto(dst, b.call.resp.Trailer)
		}
		return n, err
	}
	if err != nil {
		err = b.call.err(err)
	}
	return n, err
}

// trailersInto announces in dst the trailers that arrived, with their values.
func trailersInto(dst *fasthttp.ResponseHeader, tr http.Header) {
	for name, vals := range tr {
		if len(vals) == 0 || dst.AddTrailer(name) != nil {
			continue // announced but not sent, or a name that may not be a trailer
		}
		for _, v := range vals {
			if validFieldValue(v) {
				dst.Add(name, v)
			}
		}
	}
}

// roundTripH2 is roundTrip for a target with an HTTP/2 client: it sends the request prepare made
// ready, within deadline and for as long as the client is there (c.ClientContext, clientgone.go:
// a client gone resets the upstream stream), and puts the
// response head into c.Response. A body of known length that fits max_response_bytes (and the
// held-response budget) is announced as of unknown length, so that holdOrStream reads it whole;
// gRPC and server-sent-event responses stream at once; others as holdOrStream decides.
func (u *Upstream) roundTripH2(c *engine.Ctx, t *target, x *exchange, now, deadline time.Time) (*upstreamBody, error) {
	parent := c.ClientContext
	if parent == nil {
		parent = context.Background() // HTTP/1.x: bounded by the deadline only
	}
	if parent.Err() != nil {
		return nil, errClientGone
	}
	k := &h2Call{parent: parent, idle: deadline.Sub(now)}
	if u.streamTimeout > 0 {
		k.end = c.Start.Add(u.streamTimeout)
	}
	k.ctx, k.cancel = context.WithCancel(parent)
	k.due.Store(now.Add(k.idle).UnixNano())
	k.timer = time.AfterFunc(k.idle, func() {
		k.timedOut.Store(true)
		k.cancel()
	})
	req, rewind := t.h2.request(k, c, x)
	resp, err := t.h2.roundTrip(t.h2.pool, req, rewind)
	if err != nil {
		k.finish()
		if k.streamRead.Load() {
			x.unreplayable = true
		}
		return nil, k.err(err)
	}
	k.resp = resp
	if x.streamed && x.replay == nil {
		// The Transport may go on sending the body while the response arrives (full duplex):
		// from here the request cannot be sent again, whatever the response says (a gRPC
		// call's replay knows how much of it it kept: upstream.go checks replay.lost).
		x.unreplayable = true
	}

	dst := c.Response
	dst.ResetBody()
	headOnly := c.Request.Header.IsHead() || bodiless(resp.StatusCode)
	immediate := !headOnly && streamsAtOnce(resp.Header.Get("Content-Type"))
	cl := resp.ContentLength
	hold := false
	if !headOnly && !immediate && len(resp.Trailer) == 0 && cl >= 0 && cl <= int64(u.maxHeld) {
		hold = !x.holdRefused(c, int(cl))
	}
	// The head goes through fasthttp's own parser, as an HTTP/1.1 upstream's does: the same
	// checks, and the same response state (Set-Cookie, trailers announced) for what follows.
	x.head = appendH2Head(x.head[:0], resp, headOnly, immediate || hold)
	hr := headReader(x.head)
	err = dst.Header.Read(hr.br)
	releaseHeadReader(hr)
	if err != nil {
		k.finish()
		return nil, fmt.Errorf("an HTTP/2 response head fasthttp refuses: %w", err)
	}
	if headOnly {
		k.finish()
		return nil, nil
	}
	k.up = fasthttp.AcquireResponse()
	dst.Header.CopyTo(&k.up.Header)
	if hold {
		// holdOrStream reads it into x.scratch: room for the body and the read that sees EOF.
		x.scratch = slices.Grow(x.scratch[:0], int(cl)+1)
	}
	// The bodies live in the call: one allocation for the exchange's state, not three.
	k.rb = h2RespBody{call: k, streams: immediate || (cl >= 0 && !hold), ub: &k.ub}
	k.ub = upstreamBody{
		up:        k.up,
		r:         &k.rb,
		immediate: immediate,
		fits:      hold,
		release:   func(bool) { k.finish() },
	}
	return &k.ub, nil
}

// streamsAtOnce reports whether a response of this content type goes to the client as it comes:
// gRPC and server-sent events are streams of messages, which holding would only delay.
func streamsAtOnce(ct string) bool {
	return strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "text/event-stream")
}

// appendH2Head appends resp's head in HTTP/1.1 form. Content-Length is the response's own for
// a bodiless one; a body to be held, streamed at once, of unknown length or followed by
// trailers is announced chunked (holdOrStream then reads it; fasthttp writes a held body's
// length itself); any other keeps its length.
func appendH2Head(b []byte, resp *http.Response, headOnly, chunked bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(resp.StatusCode), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(resp.StatusCode)...)
	b = append(b, "\r\n"...)
	for name, vals := range resp.Header {
		switch name {
		case "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vals {
			if validFieldValue(v) {
				b = append(append(append(append(b, name...), ": "...), v...), "\r\n"...)
			}
		}
	}
	switch {
	case headOnly:
		if v := resp.Header.Get("Content-Length"); v != "" && validFieldValue(v) {
			b = append(append(append(b, "Content-Length: "...), v...), "\r\n"...)
		}
	case chunked || len(resp.Trailer) > 0 || resp.ContentLength < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	default:
		b = append(strconv.AppendInt(append(b, "Content-Length: "...), resp.ContentLength, 10), "\r\n"...)
	}
	if len(resp.Trailer) > 0 {
		b = append(b, "Trailer: "...)
		first := true
		for name := range resp.Trailer {
			if !first {
				b = append(b, ", "...)
			}
			first = false
			b = append(b, name...)
		}
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// validFieldValue reports whether v can be written in an HTTP/1.1 head (net/http checks
// HTTP/2 fields, this keeps a line break out whatever the protocol the target spoke).
func validFieldValue(v string) bool { return !strings.ContainsAny(v, "\r\n\x00") }

// bufReader reads a response head for fasthttp's header parser, with a buffer as large as the
// HTTP/1.1 exchange's.
type bufReader struct {
	br  *bufio.Reader
	src bytes.Reader
}

var headReaders sync.Pool

func headReader(head []byte) *bufReader {
	r, _ := headReaders.Get().(*bufReader)
	if r == nil {
		r = &bufReader{}
		r.br = bufio.NewReaderSize(&r.src, upstreamReadBuffer)
	}
	r.src.Reset(head)
	r.br.Reset(&r.src)
	return r
}

func releaseHeadReader(r *bufReader) {
	r.src.Reset(nil)
	headReaders.Put(r)
}

// request makes the http.Request for c's prepared request: the forwarded path, the request's
// headers, prepare's forwarding lines and the attempt's trace context lines, and the body (held,
// or the client's stream, never buffered here).
func (h *h2Client) request(k *h2Call, c *engine.Ctx, x *exchange) (*http.Request, func() io.ReadCloser) {
	rh := &c.Request.Header
	var uri string
	var hdr http.Header
	uri, hdr, x.h2fields = h2Fields(x.h2fields, rh, x.fwd, x.trace)
	path, query, _ := strings.Cut(uri, "?")
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = nil // present and empty: net/http adds no Go-http-client of its own
	}
	if strings.HasPrefix(string(rh.ContentType()), "application/grpc") {
		// gRPC servers require "te: trailers" (it tells them trailers will get through), a
		// hop-by-hop header prepare removed with the client's TE.
		hdr["Te"] = teTrailers
	}
	k.url = url.URL{Scheme: h.scheme, Host: h.addr, Opaque: path, RawQuery: query}
	req := &http.Request{
		Method:     method(rh.Method()),
		URL:        &k.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       string(rh.Host()),
	}
	var rewind func() io.ReadCloser
	switch {
	case c.Request.IsBodyStream():
		req.ContentLength = int64(rh.ContentLength())
		if req.ContentLength < 0 {
			req.ContentLength = -1
		}
		if x.replay != nil {
			// Kept for a retry on retry.grpc_on (grpc.go), which checks what it could keep;
			// a request the target did not process goes again the same way.
			req.Body = k.body(x.replay.view(), false)
			rewind = func() io.ReadCloser {
				if x.replay.lost() {
					return nil
				}
				return k.body(x.replay.view(), false)
			}
		} else {
			req.Body = k.body(streamFrom(c, x), true)
			// A request the target did not process goes again while none of the stream was read.
			rewind = func() io.ReadCloser {
				if k.streamRead.Load() {
					return nil
				}
				return k.body(streamFrom(c, x), true)
			}
		}
	case len(c.Request.Body()) > 0:
		body := c.Request.Body()
		req.ContentLength = int64(len(body))
		req.Body = k.body(bytes.NewReader(body), false)
		rewind = func() io.ReadCloser { return k.body(bytes.NewReader(body), false) }
	}
	return req.WithContext(k.ctx), rewind
}

// teTrailers is a gRPC request's TE value. The Transport only reads a request's header map.
var teTrailers = []string{"trailers"}

// h2Fields returns the request-target and the header map for the Transport: rh's fields but
// those the Transport writes itself or HTTP/2 forbids, then the "Name: value\r\n" lines of fwd and
// trace. The names, values and target are cut from one string made from buf (returned for
// reuse), and the maps' value slices from one array: three allocations for all fields (the
// string, the array, the map) where a string for each name and value and a slice for each
// field took three per field.
func h2Fields(buf []byte, rh *fasthttp.RequestHeader, fwd, trace []byte) (string, http.Header, []byte) {
	// spans are the fields' [name start, value start, value end) offsets in buf; a usual
	// request's fit on the stack.
	var spanBuf [24][3]int
	spans := spanBuf[:0]
	buf = append(buf[:0], rh.RequestURI()...)
	uriEnd := len(buf)
	for name, v := range rh.All() {
		switch string(name) {
		case "Host", "Content-Length", "Connection", "Transfer-Encoding", "Trailer":
			continue
		}
		start := len(buf)
		buf = append(buf, name...)
		vstart := len(buf)
		buf = append(buf, v...)
		spans = append(spans, [3]int{start, vstart, len(buf)})
	}
	for _, lines := range [2][]byte{fwd, trace} {
		for len(lines) > 0 {
			line := lines
			if i := bytes.Index(lines, []byte("\r\n")); i >= 0 {
				line, lines = lines[:i], lines[i+2:]
			} else {
				lines = nil
			}
			name, value, ok := bytes.Cut(line, []byte(": "))
			if !ok {
				continue
			}
			start := len(buf)
			buf = append(buf, name...)
			vstart := len(buf)
			buf = append(buf, value...)
			spans = append(spans, [3]int{start, vstart, len(buf)})
		}
	}
	s := string(buf)
	// Two more entries than fields: request adds User-Agent and Te.
	hdr := make(http.Header, len(spans)+2)
	vals := make([]string, len(spans))
	for i, sp := range spans {
		name, value := s[sp[0]:sp[1]], s[sp[1]:sp[2]]
		if prev, ok := hdr[name]; ok {
			hdr[name] = append(prev, value) // a repeated field: a slice of its own
			continue
		}
		vals[i] = value
		// Capacity one: appending to a field's values copies them rather than writing over
		// the next field's.
		hdr[name] = vals[i : i+1 : i+1]
	}
	return s[:uriEnd], hdr, buf
}

// method returns the method as a string, without allocating for the common ones.
func method(m []byte) string {
	for _, s := range [...]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead,
		http.MethodOptions, http.MethodPatch} {
		if string(m) == s {
			return s
		}
	}
	return string(m)
}

// probe sends one health check over the target's own protocol and returns the status.
func (h *h2Client) probe(t *target, hc *HealthCheckConfig) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), hc.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.scheme+"://"+t.addr+hc.Path, nil)
	if err != nil {
		return 0, err
	}
	req.Host = hostHeader(t)
	req.Header.Set("User-Agent", "sluice-health-check")
	resp, err := h.roundTrip(h.probes, req, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// streamFrom is the client's streamed body as it is left to send: an attempt at an HTTP/1.1
// target (stream.go) may have read its first part, still in x's buffer, before it failed.
func streamFrom(c *engine.Ctx, x *exchange) io.Reader {
	if x.bodyReads == 0 {
		return c.Request.BodyStream()
	}
	return io.MultiReader(bytes.NewReader(x.firstData), c.Request.BodyStream())
}
