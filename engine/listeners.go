package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// listenerState is the server's listener state (embedded in Server).
type listenerState struct {
	listeners  []*listener
	tlsClosers []io.Closer
	// challenge answers ACME HTTP-01 challenges on cleartext listeners (TLSListener.SetHTTPChallenge).
	challenge    atomic.Pointer[func(c *Ctx) bool]
	maintainOnce sync.Once
	stopOnce     sync.Once
	stopMaintain chan struct{}
	poll         time.Duration // certPoll when the server was made
	// Inherited are listening sockets Listen and ListenAll serve instead of binding their
	// addresses again, by the address as the configuration spells it: a reload's new server gets
	// the old one's, a process started with --takeover the running process's (handed over with
	// SCM_RIGHTS). Sharing the socket, not just the port, keeps the connections queued on it:
	// closing one of two SO_REUSEPORT sockets resets those queued on the closed one. Each is
	// taken at most once (and deleted from the map); the caller closes those left over.
	Inherited map[string]net.Listener
}

// listener is one of the server's listeners as it runs.
type listener struct {
	cfg ListenerConfig
	// eff is the server block with the listener's overrides: what its connections obey.
	eff ServerConfig
	tls *TLSListener // nil: cleartext
	// protos are the client protocols the listener serves (protocols.go).
	protos Protocols
	// httpsPort is where redirect_to_https sends requests: ":8443", or "" for 443; unset
	// (redirect false) on listeners that do not redirect.
	redirect  bool
	httpsPort string
	httpsName string // the HTTPS listener's name
	// bound is the address the listener's socket got (ListenAll, Serve), port 0 resolved; ""
	// until then. ACME points certmagic's solvers at it (acme.go).
	bound string
	// inflight counts the listener's requests in progress (listenermetrics.go).
	inflight prometheus.Gauge
}

// certPoll is how often the server looks at its certificate and ticket key files.
var certPoll = 2 * time.Second

// wellKnownACME is the path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3).
var wellKnownACME = []byte("/.well-known/acme-challenge/")

// setupListeners makes the server's listeners from the gateway's spec (certificates already
// loaded by Build are used as they are) and attaches the gateway's TLS providers.
func (s *Server) setupListeners(gw *Gateway) error {
	all := gw.Spec.EffectiveListeners()
	for i := range all {
		spec := all[i]
		l := &listener{cfg: spec, eff: spec.effective(&s.cfg), inflight: requestsInFlight.WithLabelValues(spec.Name)}
		var err error
		if l.protos, err = ParseProtocols(spec.Protocols, spec.TLS != nil); err != nil {
			return fmt.Errorf("listener %q: protocols: %w", spec.Name, err)
		}
		if spec.TLS != nil {
			tl, err := newTLSListener(s, &l.cfg, gw.Spec.Dir, gw.certs[spec.Name])
			if err != nil {
				return err
			}
			tl.Config.NextProtos = l.protos.alpn()
			l.tls = tl
		}
		if spec.RedirectToHTTPS {
			target, err := HTTPSTarget(&spec, all)
			if err != nil {
				return fmt.Errorf("listener %q: redirect_to_https: %w", spec.Name, err)
			}
			_, port, _ := net.SplitHostPort(target.Address)
			l.redirect, l.httpsName = true, target.Name
			if port != "443" {
				l.httpsPort = ":" + port
			}
		}
		s.listeners = append(s.listeners, l)
	}
	for _, l := range s.listeners {
		if l.tls == nil {
			continue
		}
		for _, p := range gw.tlsProviders {
			c, err := p.AttachTLS(l.tls)
			if err != nil {
				return fmt.Errorf("listener %q: %w", l.cfg.Name, err)
			}
			if c != nil {
				s.tlsClosers = append(s.tlsClosers, c)
			}
		}
	}
	return nil
}

// Listeners names the server's listeners, in the order of their blocks.
func (s *Server) Listeners() []string {
	out := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.cfg.Name
	}
	return out
}

// ListenerTLS returns the named listener's TLS side, nil for a cleartext or unknown listener.
func (s *Server) ListenerTLS(name string) *TLSListener {
	if l := s.listener(name); l != nil {
		return l.tls
	}
	return nil
}

func (s *Server) listener(name string) *listener {
	for _, l := range s.listeners {
		if l.cfg.Name == name {
			return l
		}
	}
	return nil
}

// ListenAll opens every listener (as Listen does for the first), by name. On failure the ones
// already open are closed.
func (s *Server) ListenAll() (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	for _, l := range s.listeners {
		ln, err := s.listen(l.cfg.Address)
		if err != nil {
			for _, o := range out {
				_ = o.Close()
			}
			return nil, fmt.Errorf("listener %q: %w", l.cfg.Name, err)
		}
		out[l.cfg.Name] = ln
		l.bound = ln.Addr().String()
	}
	for _, l := range s.listeners {
		// An HTTPS listener on port 0 got its port now: that is where redirects go.
		if l.redirect && l.httpsPort == ":0" {
			if _, port, err := net.SplitHostPort(out[l.httpsName].Addr().String()); err == nil {
				l.httpsPort = ":" + port
			}
		}
	}
	return out, nil
}

// ServeAll serves every listener on the sockets ListenAll opened, until Shutdown; it returns
// the first error a listener stops with.
func (s *Server) ServeAll(lns map[string]net.Listener) error {
	errs := make(chan error, len(lns))
	for name, ln := range lns {
		go func() { errs <- s.ServeListener(name, ln) }()
	}
	var first error
	for range lns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ServeListener accepts connections on ln for the named listener (its TLS, limits and timeouts)
// until Shutdown.
func (s *Server) ServeListener(name string, ln net.Listener) error {
	l := s.listener(name)
	if l == nil {
		return fmt.Errorf("no listener named %q", name)
	}
	s.startMaintenance()
	s.startACME() // acme.go
	rl := s.guard(ln, l)
	if l.tls == nil && !l.protos.Has(ProtoH2C) {
		// Cleartext HTTP/1.x only: nothing to classify, fasthttp accepts from the guard itself.
		return s.srv.Serve(rl)
	}
	return s.serveClassified(rl) // accept.go: TLS handshakes and ALPN, h2c prefaces
}

// startMaintenance starts, once, the goroutine that reloads changed certificate files and
// rotates session ticket keys.
func (s *Server) startMaintenance() {
	s.maintainOnce.Do(func() {
		var tl []*TLSListener
		for _, l := range s.listeners {
			if l.tls != nil {
				tl = append(tl, l.tls)
			}
		}
		if len(tl) == 0 {
			return
		}
		go func() {
			t := time.NewTicker(s.poll)
			defer t.Stop()
			for {
				select {
				case <-s.stopMaintain:
					return
				case now := <-t.C:
					for _, l := range tl {
						l.maintain(now)
					}
				}
			}
		}()
	})
}

// installCertificates gives the listeners the certificates gw loaded (a reload): handshakes
// from now on use them, those in flight keep what they picked.
func (s *Server) installCertificates(gw *Gateway) {
	for _, l := range s.listeners {
		if l.tls == nil {
			continue
		}
		if set := gw.certs[l.cfg.Name]; set != nil && set != l.tls.certs.Load() {
			l.tls.install(set)
		}
	}
}

// closeListeners stops the maintenance and closes what TLS providers attached.
func (s *Server) closeListeners() error {
	s.stopOnce.Do(func() { close(s.stopMaintain) })
	var errs []error
	for i := len(s.tlsClosers) - 1; i >= 0; i-- {
		if err := s.tlsClosers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.tlsClosers = nil
	return errors.Join(errs...)
}

// SameListeners reports whether a server made for b would listen as one made for a does, apart
// from the certificates (which a running server swaps in place): a reload between them keeps
// the server.
func SameListeners(a, b *Spec) bool {
	la, lb := a.EffectiveListeners(), b.EffectiveListeners()
	if len(la) != len(lb) {
		return false
	}
	for i := range la {
		x, y := la[i], lb[i]
		if (x.TLS == nil) != (y.TLS == nil) {
			return false
		}
		if x.TLS != nil {
			tx, ty := *x.TLS, *y.TLS
			tx.CertFile, tx.KeyFile, tx.Certificates = "", "", nil
			ty.CertFile, ty.KeyFile, ty.Certificates = "", "", nil
			x.TLS, y.TLS = &tx, &ty
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// connSettings returns the settings a connection obeys: its listener's (the server block with
// the listener's overrides), else the server block's.
func (s *Server) connSettings(nc net.Conn) *ServerConfig {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if cc, ok := nc.(*clientConn); ok && cc.lis != nil {
		return &cc.lis.eff
	}
	return &s.cfg
}

// challengePath reports whether path is an ACME HTTP-01 challenge's.
func challengePath(path []byte) bool { return bytes.HasPrefix(path, wellKnownACME) }

// edge answers what a listener answers before routing: ACME HTTP-01 challenges (when a TLS
// provider handles them) and, on a redirect_to_https listener, 308 to HTTPS. It reports whether
// it answered.
func (s *Server) edge(c *Ctx, l *listener) bool {
	if l.tls != nil {
		return false
	}
	if challengePath(c.Path) {
		if h := s.challenge.Load(); h != nil && (*h)(c) {
			return true
		}
		return false // routed as usual, never redirected: the CA fetches it over HTTP
	}
	if !l.redirect {
		return false
	}
	s.redirectHTTPS(c, l)
	return true
}

var redirectBody = "redirecting to HTTPS\n"

// redirectHTTPS answers 308 with the request's URL on the HTTPS listener: the same host (the
// canonical Host, admission.go), the HTTPS listener's port, the raw path and query.
func (s *Server) redirectHTTPS(c *Ctx, l *listener) {
	h := &c.Request.Header
	host := stripPort(h.Host())
	if len(host) == 0 {
		// HTTP/1.0 without Host: there is no name to send the client to.
		WriteError(c.Response, fasthttp.StatusBadRequest)
		return
	}
	loc := make([]byte, 0, 16+len(host)+len(l.httpsPort)+len(h.RequestURI()))
	loc = append(loc, "https://"...)
	if bytes.IndexByte(host, ':') >= 0 {
		loc = append(append(append(loc, '['), host...), ']') // an IPv6 literal
	} else {
		loc = append(loc, host...)
	}
	loc = append(loc, l.httpsPort...)
	loc = append(loc, originForm(h.RequestURI())...)
	c.Response.SetStatusCode(fasthttp.StatusPermanentRedirect)
	c.Response.Header.SetBytesKV(hdrLocation, loc)
	c.Response.Header.SetContentTypeBytes(textPlain)
	c.Response.SetBodyString(redirectBody)
}

// originForm returns the path and query of a raw request-target, also for the absolute form.
func originForm(target []byte) []byte {
	if len(target) > 0 && target[0] == '/' {
		return target
	}
	if i := bytes.Index(target, []byte("://")); i >= 0 {
		rest := target[i+3:]
		if j := bytes.IndexByte(rest, '/'); j >= 0 {
			return rest[j:]
		}
		if j := bytes.IndexByte(rest, '?'); j >= 0 {
			return append([]byte("/"), rest[j:]...)
		}
	}
	return []byte("/")
}

// listen takes the inherited socket of addr, else opens addr with SO_REUSEPORT (see Listen).
func (s *Server) listen(addr string) (net.Listener, error) {
	if ln, ok := s.Inherited[addr]; ok {
		delete(s.Inherited, addr)
		return ln, nil
	}
	if !s.Takeover {
		if err := checkAddressFree(addr); err != nil {
			return nil, err
		}
	}
	lc := net.ListenConfig{Control: reusePort}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}
