package balancer

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// target is one address of an upstream as built: its connection pool, its slot limit and its
// shared health state. A configured target whose host name resolves to several addresses
// becomes several targets.
type target struct {
	addr   string // the address dialled, "ip:port" (or "host:port" when not resolved)
	name   string // the configured address, for the admin API
	host   string // the configured host name: TLS server name
	weight int
	tls    bool

	// pool holds the target's keep-alive connections; roundTrip does the exchange itself.
	pool *connPool
	// h2, for a target the upstream's protocol puts on HTTP/2, replaces pool (h2transport.go).
	h2 *h2Client
	// dial opens a connection of its own (a WebSocket upgrade), outside the pool.
	dial func(addr string, timeout time.Duration) (net.Conn, error)
	// busy counts the requests in flight to this target, at most maxBusy
	// (max_connections_per_target). A request that finds no free slot waits on freed, and
	// waiters counts those that do.
	busy    atomic.Int32
	maxBusy int32
	waiters atomic.Int32
	freed   chan struct{}
	st      *targetState
	m       *targetMetrics

	// probe is the health-check client: its own one-connection pool, so probes neither wait
	// behind nor take slots from proxied requests. probing is set while a probe is in flight.
	probe   *fasthttp.HostClient
	probing atomic.Bool
	// grpcProbe is the HTTP/2 client of type = "grpc" health checks (health_grpc.go), or nil.
	grpcProbe *http.Transport
	// requestTimeout bounds the streams an HTTP/2 target's connections still carry at close.
	requestTimeout time.Duration
}

// tlsSettings is what a target's TLS client needs from its target block.
type tlsSettings struct {
	enabled  bool
	host     string         // the server name sent and verified: server_name, else the address's host
	roots    *x509.CertPool // nil: the system roots
	cert     *tls.Certificate
	insecure bool
}

func loadTLS(tc TargetConfig, host string, caPEM []byte) (tlsSettings, error) {
	s := tlsSettings{enabled: tc.TLS, host: host, insecure: tc.InsecureSkipVerify}
	if tc.ServerName != "" {
		s.host = tc.ServerName
	}
	if len(caPEM) > 0 {
		s.roots = x509.NewCertPool()
		if !s.roots.AppendCertsFromPEM(caPEM) {
			return s, fmt.Errorf("ca_file %q holds no PEM certificate", tc.CAFile)
		}
	}
	return s, nil
}

func newTarget(upstream string, tc TargetConfig, addr string, ts tlsSettings, u *Upstream) *target {
	t := &target{
		addr:    addr,
		name:    tc.Address,
		host:    ts.host,
		weight:  tc.Weight,
		tls:     ts.enabled,
		maxBusy: int32(u.maxConns),
		freed:   make(chan struct{}, 1),
		st:      acquireState(upstream, addr),
		m:       u.metrics.forTarget(addr),
	}
	if u.cfg.HealthCheck == nil {
		// Without active checks nothing would ever mark a target healthy again: forget a
		// verdict inherited from a previous configuration that had them.
		t.st.healthy.Store(true)
	}
	d := &dialer{connect: u.connectTimeout}
	if ts.enabled {
		d.tls = clientTLS(ts, []string{"http/1.1"})
	}
	t.probe = &fasthttp.HostClient{
		Addr:                      addr,
		Name:                      "sluice-health-check",
		DialTimeout:               d.dial,
		IsTLS:                     ts.enabled,
		MaxConns:                  1,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		MaxResponseBodySize:       64 << 10,
		SecureErrorLogMessage:     true,
		NoDefaultUserAgentHeader:  true,
	}
	if hc := u.cfg.HealthCheck; hc != nil && hc.Type == healthGRPC {
		t.grpcProbe = newGRPCProbe(addr, ts, u.connectTimeout)
	}
	t.dial = d.dial
	if t.h2 = newH2Client(u.cfg.Protocol, addr, ts, u.connectTimeout, u.maxConns); t.h2 != nil {
		t.maxBusy = int32(min(u.maxConns*h2StreamsPerConn, 1<<30))
		t.requestTimeout = u.requestTimeout
	}
	t.pool = newConnPool(u.maxConns, func(timeout time.Duration) (*upstreamConn, error) {
		return d.dialPooled(addr, timeout)
	})
	return t
}

// acquire takes one of the target's request slots, waiting at most wait for one.
func (t *target) acquire(wait time.Duration) bool {
	if t.tryAcquire() {
		return true
	}
	if wait <= 0 {
		return false
	}
	// Announce the wait before trying again: release frees its slot before it looks for
	// waiters, so either the retry below sees the slot or release sees this waiter.
	t.waiters.Add(1)
	defer t.waiters.Add(-1)
	tm := time.NewTimer(wait)
	defer tm.Stop()
	for {
		if t.tryAcquire() {
			// A wake-up may have been dropped while freed was full: pass one on if another
			// waiter could take a slot.
			if t.waiters.Load() > 1 && t.busy.Load() < t.maxBusy {
				t.wake()
			}
			return true
		}
		select {
		case <-t.freed:
		case <-tm.C:
			return false
		}
	}
}

// tryAcquire takes a slot if one is free at once.
func (t *target) tryAcquire() bool {
	for {
		n := t.busy.Load()
		if n >= t.maxBusy {
			return false
		}
		if t.busy.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release frees a slot taken with acquire or tryAcquire.
func (t *target) release() {
	t.busy.Add(-1)
	if t.waiters.Load() > 0 {
		t.wake()
	}
}

func (t *target) wake() {
	select {
	case t.freed <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// closeIdle closes the target's idle connections (it was found unhealthy or ejected).
func (t *target) closeIdle() {
	t.pool.closeIdle()
	if t.h2 != nil {
		t.h2.closeIdle()
	}
}

// close drops the target's idle connections and its reference to the shared state.
func (t *target) close() {
	t.pool.close()
	if t.h2 != nil {
		t.h2.close(t.requestTimeout)
	}
	t.probe.CloseIdleConnections()
	if t.grpcProbe != nil {
		t.grpcProbe.CloseIdleConnections()
	}
	releaseState(t.st)
}
