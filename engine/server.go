package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// Server is the fasthttp front of the gateway. It serves one Gateway at a time; Swap replaces it
// without dropping requests (in-flight ones finish on the old gateway, which is closed after).
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	srv     *fasthttp.Server
	gw      atomic.Pointer[Gateway]
	trusted trustedSet
	reqID   string
	reqIDh  HeaderName  // reqID normalised once (the server's lookups and sets of it)
	budget  *heldBudget // held_response_budget; nil: unlimited
	// acme are the TLS listeners' ACME managers (acme.go), started once by startACME.
	acme     []*acmeManager
	acmeOnce sync.Once
	// limits are the listeners' connection limits (conns.go).
	limitsMu sync.Mutex
	limits   []*connLimits
	slashes  SlashAction // escaped_slashes
	// h2 serves HTTP/2 (h2serve.go); guards are the listeners the accept loop serves
	// (accept.go), closed by Shutdown.
	h2     *http.Server
	h2own  *h2Server // h2_server = "sluice" (h2conn.go)
	guards []*resilientListener
	// parking are the watchdogs whose connections park while idle (idlepark.go).
	parking []*deadlineWatch
	// DrainTimeout bounds how long a retired gateway may keep serving before it is closed anyway.
	DrainTimeout time.Duration

	// Takeover lets Listen share an address another socket listens on (SO_REUSEPORT): a new
	// process taking over from an old one, or a reload's new server replacing the old server.
	Takeover bool
	// failures logs why the gateway answered 5xx (failurelog.go).
	failures failureLog
	// cuts logs the responses cut mid-body (cutlog.go), rate-limited as failures is.
	cuts failureLog
	// refusals logs the requests refused before routing (refusals.go).
	refusals refusalLog
	// The listeners (listeners.go).
	listenerState
}

// NewServer makes a server for gw using gw's server block (listener settings are fixed for the
// server's life; a reload changes pipelines, filters and upstreams).
func NewServer(gw *Gateway, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg := gw.Spec.Server
	trusted, err := ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, trusted: trusted, reqID: cfg.RequestID, reqIDh: NewHeaderName(cfg.RequestID), DrainTimeout: cfg.ShutdownTimeout.D()}
	if s.slashes, err = ParseSlashAction(cfg.EscapedSlashes); err != nil {
		return nil, fmt.Errorf("escaped_slashes: %w", err)
	}
	if s.DrainTimeout <= 0 {
		s.DrainTimeout = 30 * time.Second
	}
	s.stopMaintain, s.poll = make(chan struct{}), certPoll
	if err := s.setupListeners(gw); err != nil {
		_ = s.closeListeners()
		return nil, err
	}
	for _, l := range s.listeners {
		if l.tls != nil {
			l.tls.hookClientAuth() // clientauthtable.go
		}
	}
	s.installClientAuth(gw)
	if cfg.HeldResponseBudget > 0 {
		s.budget = newHeldBudget(int64(cfg.HeldResponseBudget))
	}
	s.gw.Store(gw)
	// max_connections and max_conns_per_ip are kept by the listener (conns.go), which can make
	// room by closing an idle connection: fasthttp's Concurrency and MaxConnsPerIP only refuse.
	s.srv = &fasthttp.Server{
		Name:                         "sluice",
		Handler:                      s.handle,
		ErrorHandler:                 s.handleError,
		ExpectHandler:                s.expect,
		HeaderReceived:               headerReceived, // admission.go: HTTP/1.2 is HTTP/1.1
		ReadBufferSize:               int(cfg.MaxHeaderBytes),
		WriteBufferSize:              16 << 10,
		MaxRequestBodySize:           int(cfg.MaxBodyBytes),
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true,
		CloseOnShutdown:              true,
		// Idle keep-alive connections give their buffers back: the read buffer is max_header_bytes
		// (16 KiB by default) and would otherwise stay with each idle client. Measured here: 21.3
		// → 10.4 KiB per idle connection. Its cost, a one-byte read before each request, is
		// folded into the next read by clientConn (listener.go). With StreamRequestBody (below)
		// fasthttp keeps the read buffer from a connection's first request on, and gives back
		// only the write buffer (RATIONALE.md, "Why do request bodies stream"); a connection idle
		// for a second parks instead (idlepark.go).
		ReduceMemoryUsage: true,
		// The request's start time is read once, by handle, through RequestCtx.Time: fasthttp
		// would otherwise read the clock before every request for itself.
		LazyRequestTime:               true,
		Logger:                        fasthttpLogger{log},
		DisableHeaderNamesNormalizing: false,
		// Bodies that did not arrive with the head stream through the pipeline instead of being
		// held whole; the server enforces max_body_bytes on them itself (stream.go).
		StreamRequestBody: true,
		// A worker whose connection parked (idlepark.go) waits here for a new connection with
		// the stack its requests grew (8 KiB): let it go after a second instead of ten.
		MaxIdleWorkerDuration: time.Second,
	}
	s.h2 = s.newH2Server()
	s.h2own = newH2OwnServer(s)
	return s, nil
}

// Serve accepts connections on ln for the first listener until Shutdown. ServeAll serves every
// listener (ServeListener, listeners.go).
func (s *Server) Serve(ln net.Listener) error {
	s.listeners[0].bound = ln.Addr().String()
	return s.ServeListener(s.listeners[0].cfg.Name, ln)
}

// shortestTimeout is the smallest of the positive durations (0 if none is).
func shortestTimeout(ds ...time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		if d > 0 && (m == 0 || d < m) {
			m = d
		}
	}
	return m
}

// Listen opens the first listener with SO_REUSEPORT, so that a new gateway process can bind
// the same port and start accepting before the old one stops (a zero-downtime binary upgrade).
// Unless s.Takeover is set the address must be free (see checkAddressFree): a second gateway
// started by mistake fails instead of silently taking half of the connections. ListenAll opens
// every listener.
func (s *Server) Listen() (net.Listener, error) {
	return s.listen(s.listeners[0].cfg.Address)
}

// Gateway returns the gateway serving new requests.
func (s *Server) Gateway() *Gateway { return s.gw.Load() }

// Swap makes gw serve new requests at once; the old gateway finishes its in-flight requests (for
// at most DrainTimeout) and is then closed. The returned channel closes when it is.
func (s *Server) Swap(gw *Gateway) <-chan struct{} {
	s.installCertificates(gw)
	s.installClientAuth(gw)
	old := s.gw.Swap(gw)
	s.acmeSwap(gw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		drain(old, s.DrainTimeout)
		if err := old.Close(); err != nil {
			s.log.Warn("closing the previous configuration", "err", err)
		}
	}()
	return done
}

func drain(g *Gateway, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for g.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// StopAccepting ends the accept loops (Shutdown's first step; calling both is fine). A reload that
// starts a new server on the same listening sockets calls it before it returns: until then the
// previous server's accept loop takes its share of new connections, so a client that connects
// right after a reload could still meet the previous configuration (its certificates).
func (s *Server) StopAccepting() {
	s.limitsMu.Lock()
	for _, rl := range s.guards {
		_ = rl.Close()
	}
	s.limitsMu.Unlock()
}

// Shutdown stops accepting, lets in-flight requests finish (bounded by ctx), then closes the
// current gateway.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	// HTTP/2 connections get GOAWAY and finish their streams, alongside fasthttp's.
	h2done := make(chan error, 1)
	go func() {
		err := s.h2.Shutdown(ctx)
		if err != nil {
			_ = s.h2.Close()
		}
		if oerr := s.h2own.shutdown(ctx); err == nil {
			err = oerr
		}
		h2done <- err
	}()
	err := s.srv.ShutdownWithContext(ctx)
	s.closeParked() // idlepark.go: fasthttp no longer knows them
	if h2err := <-h2done; err == nil {
		err = h2err
	}
	if cerr := s.closeListeners(); cerr != nil && err == nil {
		err = cerr
	}
	g := s.gw.Load()
	drain(g, time.Until(deadlineOr(ctx, time.Second)))
	// Sinks (access logs, exporters) get what is left of the deadline.
	if cerr := g.CloseContext(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if t, ok := ctx.Deadline(); ok {
		return t
	}
	return time.Now().Add(d)
}

// acquire pins the current gateway for one request.
func (s *Server) acquire() *Gateway {
	for {
		g := s.gw.Load()
		g.inflight.Add(1)
		// A Swap between Load and Add may already be draining g: go again with the new one, so
		// a drained gateway never gains a request.
		if s.gw.Load() == g {
			return g
		}
		g.inflight.Add(-1)
	}
}

var (
	hdrXFF       = []byte("X-Forwarded-For")
	notFoundBody = "no route for this request\n"
)

func (s *Server) handle(fc *fasthttp.RequestCtx) {
	var memo *hostMemo
	if cc := connOf(fc); cc != nil {
		memo = &cc.host
	}
	if !s.admit(fc, memo) { // admission.go: framing, header names, version, method, host, escaped slashes
		countUnrouted(fc.Request.Header.Method(), fc.Response.StatusCode()) // refusals.go
		grpcAnswerTo(&fc.Request, &fc.Response)                             // grpcstatus.go: a gRPC client reads a status
		return
	}
	c := AcquireCtx(fc)
	c.Start = fc.Time()
	c.Proto = ProtoOf(&fc.Request.Header)
	s.run(c, true)
}

// run serves an admitted request, HTTP/1.x (h1) or HTTP/2 (h2serve.go): it cleans the request,
// routes it and runs its pipeline. The response is left in c.Fast.Response for the protocol's
// server to write. An HTTP/1.x request's c is released here, or by the end of its streamed
// response (respfinish.go). An HTTP/2 request's is kept (kept) for the HTTP/2 handler, which
// releases it once the response is written (releaseServed), so that a write that fails can say
// which request it cut (cutlog.go).
func (s *Server) run(c *Ctx, h1 bool) (kept bool) {
	fc := c.Fast
	c.fin.on = true // the response's end is followed for DeferFinish (respfinish.go)
	g := s.acquire()
	peer, cc := c.setPeer(fc)
	var lis *listener
	if cc != nil {
		if lis = cc.lis; lis != nil {
			c.Listener = lis.cfg.Name
		}
	}
	if !h1 {
		cc = nil // an HTTP/2 connection carries many streams: no per-request cycle to follow
	}
	if cc != nil {
		cc.startRequest()
	}
	if status := s.clean(g, c, peer); status != 0 {
		reason := reasonHeaderPolicy
		if status == fasthttp.StatusRequestURITooLong {
			reason = reasonURITooLong
		}
		s.refused(fc, fc.Request.Header.Method(), status, reason, true) // refusals.go
		WriteError(&fc.Response, status)
		grpcAnswer(c)
		fc.SetConnectionClose()
		ReleaseCtx(c)
		g.inflight.Add(-1)
		return false
	}
	// HTTP/1.x: 413, buffered or streamed (stream.go); the HTTP/2 handler settled its body
	// before (h2serve.go).
	if status := s.admitBody(c, cc, h1); status != 0 {
		s.refused(fc, fc.Request.Header.Method(), status, reasonBody, true)
		WriteError(&fc.Response, status)
		fc.SetConnectionClose()
		lingerOnClose(fc) // the client may still be sending the body
		ReleaseCtx(c)
		g.inflight.Add(-1)
		return false
	}
	c.ClientAddr = peer
	if len(s.trusted) > 0 {
		c.ClientAddr = s.trusted.clientAddr(peer, fc.Request.Header.PeekBytes(hdrXFF))
	}
	if status := s.clientCert(c, cc); status != 0 { // clientcert.go: mutual TLS
		// 421: another connection (with the right server name) can serve it; 403: the
		// connection's certificate is no longer accepted.
		s.refused(fc, fc.Request.Header.Method(), status, reasonClientCert, true)
		WriteError(&fc.Response, status)
		fc.SetConnectionClose()
		ReleaseCtx(c)
		g.inflight.Add(-1)
		return false
	}
	if s.reqID != "" {
		s.requestID(c, peer)
	}
	c.Path = s.routingPath(c.Path[:0], &fc.Request)
	if lis != nil {
		lis.inflight.Inc() // listenermetrics.go
	}
	var p *Pipeline
	edge := lis != nil && lis.tls == nil && s.edge(c, lis) // listeners.go: redirect_to_https, ACME challenges
	if !edge {
		p = g.Router.Route(c) // router.go: listener, host, path, method, predicates
	}
	if p != nil {
		s.forwardClientCert(g, c, p) // clientcert.go: X-Forwarded-Client-Cert
	}
	if g.observer != nil {
		g.observer.StartRequest(c, p)
	}
	switch {
	case edge: // answered
	case p == nil:
		c.AddFlags(FlagNoRoute)
		fc.Response.SetStatusCode(fasthttp.StatusNotFound)
		fc.Response.Header.SetContentTypeBytes(textPlain)
		fc.Response.SetBodyString(notFoundBody)
		grpcAnswer(c) // grpcstatus.go: a gRPC client reads UNIMPLEMENTED
	default:
		s.serve(p, c)
		if c.Failure != nil && fc.Response.StatusCode() >= 500 {
			s.failures.record(s.log, c, fc.Response.StatusCode(), s.reqID)
		}
	}
	if s.reqID != "" {
		// The terminal may have replaced the response: return the id last.
		fc.Response.Header.SetCanonical(s.reqIDh.canon, s.reqIDh.Peek(&fc.Request.Header))
	}
	if g.observer != nil {
		g.observer.EndRequest(c)
	}
	streamed := fc.Response.IsBodyStream()
	// A streamed response is followed to its end (respfinish.go), which then releases c.
	deferred := c.finishLater(s, streamed)
	if h1 && fc.Request.IsBodyStream() {
		endBody(c)
	}
	if cc != nil {
		// The response is complete unless its body streams or the connection was taken over:
		// its last write may wait for the read of the next request (clientConn.Write).
		cc.hold.Store(!fc.Hijacked() && !streamed)
		if streamed {
			cc.streamFor(s.cfg.StreamTimeout.D()) // write_timeout per write (stream.go)
		}
	}
	g.inflight.Add(-1)
	if lis != nil {
		lis.inflight.Dec()
	}
	if deferred {
		return false
	}
	if !h1 || fc.Request.IsBodyStream() {
		// The HTTP/2 handler releases c once it has written the response (releaseServed).
		// A c whose request body streams is left to the garbage collector (RATIONALE.md):
		// an HTTP/2 upstream exchange may still be in a read of it. (This call of
		// ReleaseCtx, and finishLater's above, are kept at their lines in run for
		// release.pgo, which has them inlined.)
		return !h1
	}
	ReleaseCtx(c)
	return false
}

// releaseServed releases c, whose response is written, unless its request's body streams: an
// HTTP/2 upstream exchange reads it (c.body) on a goroutine of its own, which may still be in a
// read (the target answered before the body ended). Such a c is left to the garbage collector
// rather than pooled under it (RATIONALE.md).
func releaseServed(c *Ctx) {
	if !c.Request.IsBodyStream() {
		ReleaseCtx(c)
	}
}

// serve runs the pipeline. Panics in stages are recovered by the pipeline (500, response
// phases still run); they are logged here. A panic that escapes anyway (in the observer) still
// answers 500 for this request only.
func (s *Server) serve(p *Pipeline, c *Ctx) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic while serving a request", "pipeline", p.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.Fail(fasthttp.StatusInternalServerError, fmt.Errorf("panic: %v", r))
		}
		s.grpcAnswer(c) // grpcstatus.go: the gateway's answers to gRPC calls as gRPC statuses
	}()
	p.Serve(c)
	if pe, ok := c.Failure.(*PanicError); ok {
		s.log.Error("panic in a filter", "pipeline", pe.Pipeline, "stage", pe.Stage, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
}

// requestID keeps a request id sent by a trusted proxy, else sets a fresh random one.
func (s *Server) requestID(c *Ctx, peer netip.Addr) {
	h := &c.Request.Header
	if len(s.reqIDh.Peek(h)) > 0 && len(s.trusted) > 0 && s.trusted.has(peer) {
		return
	}
	var buf [32]byte
	const hexdig = "0123456789abcdef"
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 16; i++ {
		buf[i] = hexdig[(a>>(4*i))&0xf]
		buf[16+i] = hexdig[(b>>(4*i))&0xf]
	}
	h.SetCanonical(s.reqIDh.canon, buf[:])
}

func (s *Server) handleError(fc *fasthttp.RequestCtx, err error) {
	status := errorStatus(fc, err)
	// fasthttp could not read the request: counted and logged as a refusal (refusals.go), its
	// method unknown.
	s.refused(fc, nil, status, errorReason(status), true)
	WriteError(&fc.Response, status)
	fc.SetConnectionClose()
	// The client may still be sending (an oversized header or body): let the answer reach it.
	lingerOnClose(fc)
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(redactQuoted(fmt.Sprintf(format, args...)), "component", "http")
}
