package balancer

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
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

	// client is the target's keep-alive connection pool; roundTrip does the exchange itself.
	client *fasthttp.HostClient
	// dial opens a connection of its own (a WebSocket upgrade), outside the pool.
	dial func(addr string, timeout time.Duration) (net.Conn, error)
	// slots bounds the requests in flight to this target (max_connections_per_target).
	slots chan struct{}
	st    *targetState
	m     *targetMetrics

	// probe is the health-check client: its own one-connection pool, so probes neither wait
	// behind nor take slots from proxied requests. probing is set while a probe is in flight.
	probe   *fasthttp.HostClient
	probing atomic.Bool
}

// tlsSettings is what a target's TLS client needs from its target block.
type tlsSettings struct {
	enabled bool
	host    string
	roots   *x509.CertPool // nil: the system roots
}

func loadTLS(tc TargetConfig, host string, caPEM []byte) (tlsSettings, error) {
	s := tlsSettings{enabled: tc.TLS, host: host}
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
		addr:   addr,
		name:   tc.Address,
		host:   ts.host,
		weight: tc.Weight,
		tls:    ts.enabled,
		slots:  make(chan struct{}, u.maxConns),
		st:     acquireState(upstream, addr),
		m:      u.metrics.forTarget(addr),
	}
	if u.cfg.HealthCheck == nil {
		// Without active checks nothing would ever mark a target healthy again: forget a
		// verdict inherited from a previous configuration that had them.
		t.st.healthy.Store(true)
	}
	d := &dialer{connect: u.connectTimeout}
	if ts.enabled {
		d.tls = &tls.Config{
			ServerName: ts.host,
			RootCAs:    ts.roots,
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
		}
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
	t.dial = d.dial
	// Only the pool is used: AcquireConn, ReleaseConn/CloseConn. Requests are written and
	// responses read by roundTrip, in place in the client's RequestCtx, through each
	// connection's own read buffer (upstreamConn).
	t.client = &fasthttp.HostClient{
		Addr: addr,
		// The dialer does TLS itself (IsTLS would wrap the connection a second time).
		DialTimeout: d.dialPooled,
		MaxConns:    u.maxConns,
		// Idle connections are closed before common upstream idle timeouts (Node.js: 5s)
		// close them under us: a request written to a connection the upstream just closed
		// fails after it may have been sent, and a POST cannot be retried then.
		MaxIdleConnDuration: 4 * time.Second,
	}
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
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case t.slots <- struct{}{}:
		return true
	case <-tm.C:
		return false
	}
}

// tryAcquire takes a connection slot if one is free at once.
func (t *target) tryAcquire() bool {
	select {
	case t.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (t *target) release() { <-t.slots }

// close drops the target's idle connections and its reference to the shared state.
func (t *target) close() {
	t.client.CloseIdleConnections()
	t.probe.CloseIdleConnections()
	releaseState(t.st)
}
