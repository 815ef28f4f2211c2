package engine

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// The connection-flood defences: client connections are counted here, not by fasthttp, so that a
// full server can make room instead of refusing.
//
//   - max_conns_per_ip: one address (an IPv6 /64) may hold at most this many connections; the
//     next one gets 429 and is closed. Addresses in trusted_proxies are exempt: a load balancer in
//     front carries every client's connections.
//   - max_connections: when every slot is taken, an idle connection (a keep-alive connection
//     waiting for its next request, or a new one that has not sent a byte yet) is closed to make
//     room: the longest-idle one of the address holding the most connections. Only when none is
//     idle does the new connection get 503.
//   - Under pressure (more than pressurePercent of max_connections open), idle connections are
//     closed after idle_timeout_under_pressure instead of idle_timeout.
//   - first_byte_timeout: a new connection must send its first byte within it (deadline.go).
//
// The bookkeeping is per connection (accept and close), never per request: whether and since
// when a connection is idle is read from the deadline it already keeps (deadline.go).

// pressurePercent is the share of max_connections above which idle connections get the short
// idle_timeout_under_pressure.
const pressurePercent = 85

// connLimits admits the connections of one listener.
type connLimits struct {
	max, perIP int        // 0: no limit
	exempt     trustedSet // addresses the per-address limit does not apply to
	tls        bool       // refusals are not answered in plain HTTP on a TLS listener
	log        *slog.Logger
	openGauge  prometheus.Gauge // sluice_client_connections of the listener

	mu      sync.Mutex
	open    int
	byAddr  map[netip.Addr]int32
	lastLog time.Time

	// watch finds and closes idle connections when the server is full; nil when the server has
	// no timeouts (then a full server refuses).
	watch *deadlineWatch
}

var (
	connsOpen = promauto.With(metrics.Registry).NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_client_connections",
		Help: "Client connections open, by listener (counted against max_connections; only on listeners with max_connections or max_conns_per_ip set, as they are by default).",
	}, []string{"listener"})
	connsRefused = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_client_connections_refused_total",
		Help: "Client connections refused at accept, by reason: per_ip (max_conns_per_ip, answered 429) or full (max_connections with no idle connection to close, answered 503).",
	}, []string{"reason"})
	connsRefusedPerIP = connsRefused.WithLabelValues("per_ip")
	connsRefusedFull  = connsRefused.WithLabelValues("full")
	connsEvicted      = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_client_connections_evicted_total",
		Help: "Idle client connections closed to make room, by reason: full (a new connection arrived at max_connections) or pressure (idle longer than idle_timeout_under_pressure while above 85% of max_connections).",
	}, []string{"reason"})
	connsEvictedFull     = connsEvicted.WithLabelValues("full")
	connsEvictedPressure = connsEvicted.WithLabelValues("pressure")
)

// addrKey is the key an address is counted under: IPv6 addresses by their /64, which one host
// usually has whole.
func addrKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// admit counts c in, or returns the status to refuse it with (429: its address holds
// max_conns_per_ip connections; 503: the server is full and no connection is idle).
func (l *connLimits) admit(c *clientConn) int {
	key := addrKey(c.peer)
	perIP := l.perIP > 0 && key.IsValid() && !l.exempt.has(c.peer)
	l.mu.Lock()
	if perIP && int(l.byAddr[key]) >= l.perIP {
		l.mu.Unlock()
		connsRefusedPerIP.Inc()
		l.logRefusal("max_conns_per_ip", c.peer)
		countUnrouted(nil, 429) // refusals.go: the connection's request, unread, is counted
		return 429
	}
	if l.max > 0 && l.open >= l.max {
		// Make room by closing the connection idle the longest. Its slot is given up at once
		// (evict), so the count stays within max_connections.
		l.mu.Unlock()
		if l.watch == nil || !l.watch.evictOldestIdle(c) {
			connsRefusedFull.Inc()
			l.logRefusal("max_connections", c.peer)
			countUnrouted(nil, 503)
			return 503
		}
		connsEvictedFull.Inc()
		l.mu.Lock()
	}
	l.open++
	if perIP {
		l.byAddr[key]++
		c.limitKey = key
	}
	l.mu.Unlock()
	c.limits = l
	c.counted.Store(true)
	l.openGauge.Inc()
	return 0
}

// release gives c's slot back, once (on close or eviction).
func (l *connLimits) release(c *clientConn) {
	if !c.counted.CompareAndSwap(true, false) {
		return
	}
	l.mu.Lock()
	l.open--
	if c.limitKey.IsValid() {
		if n := l.byAddr[c.limitKey] - 1; n > 0 {
			l.byAddr[c.limitKey] = n
		} else {
			delete(l.byAddr, c.limitKey)
		}
	}
	l.mu.Unlock()
	l.openGauge.Dec()
}

// underPressure reports whether more than pressurePercent of max_connections are open.
func (l *connLimits) underPressure() bool {
	if l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open*100 > l.max*pressurePercent
}

func (l *connLimits) logRefusal(limit string, peer netip.Addr) {
	l.mu.Lock()
	now := time.Now()
	quiet := now.Sub(l.lastLog) < time.Second
	if !quiet {
		l.lastLog = now
	}
	l.mu.Unlock()
	if !quiet {
		l.log.Warn("refusing a client connection", "limit", limit, "peer", peer.String())
	}
}

// refuse answers a refused connection (in plain HTTP, unless the listener is TLS) and closes it.
// The answer is written before the request is read, as fasthttp does. Closing a socket with
// unread input resets it, and the client may then lose the answer: so the connection is shut for
// writing and its input drained for a moment before the close (a lingering close, shorter and
// fewer at once than linger.go's for error answers: these come in floods), by at most
// maxRefusedLingering goroutines at once; beyond that it is closed at once.
func (l *connLimits) refuse(nc net.Conn, status int) {
	if l.tls {
		_ = nc.Close()
		return
	}
	select {
	case refusedLingering <- struct{}{}:
	default:
		_ = nc.Close()
		return
	}
	go func() {
		defer func() { <-refusedLingering }()
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(refuseLinger))
		msg := refused503
		if status == 429 {
			msg = refused429
		}
		if _, err := nc.Write(msg); err != nil {
			return
		}
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, nc, 64<<10)
	}()
}

// refuseLinger bounds a refused connection's lingering close; maxRefusedLingering, how many
// linger at once.
const (
	refuseLinger        = 500 * time.Millisecond
	maxRefusedLingering = 64
)

var refusedLingering = make(chan struct{}, maxRefusedLingering)

var (
	refused429 = []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\nConnection: close\r\n\r\nToo Many Requests\n")
	refused503 = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n")
)

// idleSince reports whether c is idle (waiting for a request's first byte) and since when, on
// the watchdog's clock. It is worked out from the deadline the idle phase set, so that nothing is
// recorded per request.
func (w *deadlineWatch) idleSince(c *clientConn) (int64, bool) {
	if at := c.h2Idle.Load(); at != 0 {
		return at, at > 0 && !c.evicted.Load() // HTTP/2 (h2idle.go)
	}
	var d int64
	switch c.phase.Load() {
	case phaseIdle:
		d = w.idle
	case phaseNew:
		d = w.firstByte
	default:
		return 0, false
	}
	want := c.rd.want.Load()
	if want <= 0 || d <= 0 || c.evicted.Load() {
		return 0, false
	}
	return want - int64(w.tick) - d, true
}

// evict closes an idle connection: its slot is given back now, and a past read deadline ends its
// wait (the server then closes it without an answer, as after an idle timeout). It fails if c is
// no longer idle with the deadline seen (want).
func (w *deadlineWatch) evict(c *clientConn, want int64) bool {
	if c.h2Idle.Load() != 0 {
		return w.evictH2(c)
	}
	if !c.rd.want.CompareAndSwap(want, 1) {
		return false // it moved on (a request arrived) meanwhile
	}
	c.evicted.Store(true)
	c.mu.Lock()
	_ = c.rd.apply(c, false, w.now.Load())
	c.mu.Unlock()
	if w.limits != nil {
		w.limits.release(c) // w's: c.limits is set by the accepting goroutine, unsynchronized
	}
	return true
}

// idleCand is an idle connection found by a sweep, and how many connections its address holds.
type idleCand struct {
	c      *clientConn
	since  int64
	want   int64
	weight int32
}

// evictOldestIdle closes the connection idle the longest but self (the new connection), from the
// candidates of the last sweep, sweeping again when they are used up.
func (w *deadlineWatch) evictOldestIdle(self *clientConn) bool {
	w.candMu.Lock()
	defer w.candMu.Unlock()
	for pass := 0; pass < 2; pass++ {
		for len(w.cands) > 0 {
			k := w.cands[0]
			w.cands = w.cands[1:]
			if k.c == self {
				continue
			}
			if since, ok := w.idleSince(k.c); ok && since == k.since && w.evict(k.c, k.want) {
				return true
			}
		}
		if pass == 0 {
			if now := w.now.Load(); now == w.sweptEmpty {
				break // none was old enough this tick: don't sweep for every new connection
			}
			if w.sweepIdle(); len(w.cands) == 0 {
				w.sweptEmpty = w.now.Load()
			}
		}
	}
	return false
}

// maxCands bounds the candidates a sweep keeps: the oldest idle connections, enough for a burst
// of new connections between two ticks.
const maxCands = 256

// sweepIdle collects the idle connections to close first into w.cands: those of the addresses
// holding the most connections, and of those the longest idle. Ordered so, a flood of
// connections from a few addresses makes room for other clients out of its own connections (an
// attacker that reconnects whenever one is closed pushes out its own), and a client that has
// just connected, or a keep-alive client between two requests, is closed last. w.candMu held.
func (w *deadlineWatch) sweepIdle() {
	w.mu.Lock()
	all := w.sweepBuf[:0]
	for c := range w.conns {
		if since, ok := w.idleSince(c); ok {
			all = append(all, idleCand{c: c, since: since, want: c.rd.want.Load()})
		}
	}
	w.mu.Unlock()
	if l := w.limits; l != nil {
		l.mu.Lock()
		for i := range all {
			if k := all[i].c.limitKey; k.IsValid() {
				all[i].weight = l.byAddr[k]
			}
		}
		l.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b idleCand) int {
		if a.weight != b.weight {
			return int(b.weight - a.weight)
		}
		return int(min(max(a.since-b.since, -1), 1))
	})
	n := min(len(all), maxCands)
	w.cands = append(w.candBuf[:0], all[:n]...)
	w.candBuf = w.cands
	clear(all) // don't keep closed connections reachable
	w.sweepBuf = all[:0]
}

// pressureSweep closes, while the server is under pressure, the connections idle for longer than
// idle_timeout_under_pressure. It runs on the watchdog's ticks.
func (w *deadlineWatch) pressureSweep(batch []*clientConn, now int64) {
	if w.limits == nil || w.pressureIdle <= 0 || !w.limits.underPressure() {
		return
	}
	for _, c := range batch {
		if since, ok := w.idleSince(c); ok && now-since > w.pressureIdle {
			if w.evict(c, c.rd.want.Load()) {
				connsEvictedPressure.Inc()
			}
		}
	}
}

// unlimitedWarnings warns about limits turned off: each is allowed, none is safe.
func (s *ServerConfig) unlimitedWarnings() []error {
	var w []error
	if s.MaxConnections == 0 {
		w = append(w, FieldWarn("max_connections", "0 means unlimited: the open-file limit is then the only bound on client connections"))
	}
	if s.MaxConnsPerIP == 0 {
		w = append(w, FieldWarn("max_conns_per_ip", "0 means unlimited: one address can take every connection slot"))
	}
	if s.FirstByteTimeout == 0 {
		w = append(w, FieldWarn("first_byte_timeout", "0 turns it off: a new connection that sends nothing holds its slot for read_timeout"))
	}
	if s.IdleTimeoutUnderPressure == 0 {
		w = append(w, FieldWarn("idle_timeout_under_pressure", "0 turns it off: idle connections keep their slots for idle_timeout however full the server is"))
	}
	if s.HeldResponseBudget == 0 {
		w = append(w, FieldWarn("held_response_budget", "0 means unlimited: slow clients can pin max_response_bytes each in memory"))
	}
	if s.MinWriteRate == 0 {
		w = append(w, FieldWarn("min_write_rate", "0 turns it off: a client that stops reading holds its response until write_timeout"))
	}
	// 0 sets no deadline at all (deadlineWatch.after), as in fasthttp; idle_timeout = 0 is
	// read_timeout, so it is covered by read_timeout's warning.
	if s.ReadTimeout == 0 {
		w = append(w, FieldWarn("read_timeout", "0 means no limit: a client that sends its request a byte at a time holds its connection for ever"))
	}
	if s.StreamTimeout == 0 {
		w = append(w, FieldWarn("stream_timeout", "0 means no limit: a streamed body that keeps trickling in or out holds its connection and upstream for ever"))
	}
	if s.WriteTimeout == 0 {
		w = append(w, FieldWarn("write_timeout", "0 means no limit: a client that reads slowly enough for min_write_rate holds its response for ever"))
	}
	return w
}

// guard wraps ln with what the server keeps per connection: the timeouts (deadline.go), the
// connection limits, the minimum write rate and the held-response budget.
func (s *Server) guard(ln net.Listener, lis *listener) *resilientListener {
	cfg := &lis.eff // the server block with the listener's overrides
	rl := &resilientListener{Listener: ln, log: s.log, budget: s.budget, lis: lis}
	// The connections keep the server's timeouts themselves (deadline.go); fasthttp has none.
	read, write, idle := cfg.ReadTimeout.D(), cfg.WriteTimeout.D(), cfg.IdleTimeout.D()
	if idle <= 0 {
		idle = read // as fasthttp does
	}
	firstByte := cfg.FirstByteTimeout.D()
	if read > 0 && firstByte > read {
		firstByte = read // the first byte never gets longer than the whole request would
	}
	if shortest := shortestTimeout(read, write, idle, firstByte); shortest > 0 {
		w := newWatch(watchTick(shortest), read, write, idle)
		w.log = s.log
		w.firstByte = int64(firstByte)
		w.pressureIdle = int64(cfg.IdleTimeoutUnderPressure.D())
		if cfg.MinWriteRate > 0 && cfg.MinWriteRateWindow > 0 {
			w.minRate, w.rateWindow = int64(cfg.MinWriteRate), int64(cfg.MinWriteRateWindow.D())
		}
		if lis.tls == nil && w.idle > 0 {
			w.parkAfter, w.serve = parkAfter(), s.srv.ServeConn // idlepark.go
			s.limitsMu.Lock()
			s.parking = append(s.parking, w)
			s.limitsMu.Unlock()
		}
		rl.watch = w
	}
	if cfg.MaxConnections > 0 || cfg.MaxConnsPerIP > 0 {
		l := &connLimits{max: cfg.MaxConnections, perIP: cfg.MaxConnsPerIP, exempt: s.trusted,
			tls: lis.tls != nil, log: s.log, byAddr: map[netip.Addr]int32{}, watch: rl.watch,
			openGauge: connsOpen.WithLabelValues(lis.cfg.Name)}
		rl.limits = l
		s.limitsMu.Lock()
		s.limits = append(s.limits, l)
		s.limitsMu.Unlock()
		if rl.watch != nil {
			rl.watch.limits = l
		}
	}
	if rl.watch != nil {
		rl.watch.start()
	}
	return rl
}

// OpenConnections is the number of client connections counted against max_connections (0 when
// the server has no connection limits).
func (s *Server) OpenConnections() int {
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	n := 0
	for _, l := range s.limits {
		l.mu.Lock()
		n += l.open
		l.mu.Unlock()
	}
	return n
}
