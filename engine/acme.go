package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/valyala/fasthttp"
)

// ACME through certmagic (Caddy's certificate manager): it keeps the account, obtains a
// certificate per domain in the background, renews it, and stores all of it in the storage
// directory, where several instances share it (certmagic locks there, so one of them asks the CA
// and the others load the result, and any of them answers a challenge another started).
//
// certmagic would serve the challenges on listeners of its own; Sluice answers them on its own
// listeners instead: HTTP-01 in Server.handle before routing (acmeManager.serveChallenge),
// TLS-ALPN-01 through the TLS listener's GetCertificate with "acme-tls/1" in its NextProtos.
// certmagic's solvers still try to bind their port before each challenge; pointed at Sluice's
// listeners (ListenHost, AltHTTPPort, AltTLSALPNPort), that bind fails, certmagic finds the port
// answering and assumes, rightly, that whoever listens there serves the challenge.

// acmeRenewCheckInterval is how often certmagic looks for certificates due for renewal
// (certmagic's default, 10 minutes; the Pebble test shortens it).
var acmeRenewCheckInterval = certmagic.DefaultRenewCheckInterval

// acmeChallengePrefix starts the path of every HTTP-01 challenge request (RFC 8555 §8.3).
var acmeChallengePrefix = []byte("/.well-known/acme-challenge/")

// acmeALPN is the protocol of a TLS-ALPN-01 validation handshake (RFC 8737).
const acmeALPN = "acme-tls/1"

// acmeManager gets and renews the certificates of a TLS listener's acme block.
type acmeManager struct {
	conf    *ACMEConfig
	tls     *TLSListener
	domains []string // managed so far (start, Server.acmeSwap)
	log     *slog.Logger
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	storage certmagic.Storage
	ctx     context.Context // ends when the server shuts down: background obtaining and retries stop
	cancel  context.CancelFunc
}

// newACMEManager prepares certificate management for ac; start begins it. dir resolves relative
// paths.
func newACMEManager(ac *ACMEConfig, dir string, log *slog.Logger) (*acmeManager, error) {
	env := &BuildEnv{Dir: dir}
	var roots *x509.CertPool
	if ac.CARootFile != "" {
		var err error
		if roots, err = loadRoots(env.Path(ac.CARootFile)); err != nil {
			return nil, fmt.Errorf("acme: ca_root_file: %w", err)
		}
	}
	var storage certmagic.Storage
	if ac.Storage == "redis" {
		if ac.redis == nil {
			return nil, fmt.Errorf("acme: the redis block %q was not found", string(ac.Redis))
		}
		storage = newRedisStorage(ac.redis)
	} else {
		storageDir := ac.StorageDir
		if storageDir == "" {
			storageDir = DefaultACMEStorageDir()
		}
		storageDir = env.Path(storageDir)
		if err := prepareStorageDir(storageDir, log); err != nil {
			return nil, err
		}
		storage = &certmagic.FileStorage{Path: storageDir}
	}
	m := &acmeManager{conf: ac, log: log.With("component", "acme"), storage: storage}
	zl := zapToSlog(m.log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: acmeRenewCheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: storage,
		Logger:  zl,
	})
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:     ac.CAURL,
		Email:  ac.Email,
		Agreed: true, // using the acme block is agreeing to the CA's terms (README "HTTPS")
		// An issuer for a CA other than Let's Encrypt production has no "test CA" to fall back on.
		TestCA:       testCAFor(ac.CAURL),
		TrustedRoots: roots,
		Logger:       zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// testCAFor is the CA certmagic retries a failing order with: Let's Encrypt staging for Let's
// Encrypt production (its rate limits are far higher), else the CA itself.
func testCAFor(ca string) string {
	if ca == LetsEncryptProduction {
		return LetsEncryptStaging
	}
	return ca
}

// start points the challenge solvers at the listeners that answer them (httpAddr: a cleartext
// listener's address, or "" for none; tlsAddr: the TLS listener's) and starts obtaining and
// renewing domains in the background: it returns at once, and handshakes for a name without a
// certificate yet fail until one arrives.
func (m *acmeManager) start(httpAddr, tlsAddr string, domains []string) error {
	m.domains = domains
	host, port, err := splitPort(tlsAddr)
	if err != nil {
		return fmt.Errorf("acme: the TLS listener's address: %w", err)
	}
	m.issuer.ListenHost = host
	m.issuer.AltTLSALPNPort = port
	m.issuer.DisableTLSALPNChallenge = !m.uses(ChallengeTLSALPN01)
	m.issuer.DisableHTTPChallenge = true
	if httpAddr != "" && m.uses(ChallengeHTTP01) {
		h, p, err := splitPort(httpAddr)
		if err != nil {
			return fmt.Errorf("acme: the cleartext listener's address: %w", err)
		}
		if h != host {
			// certmagic has one ListenHost for both solvers: the HTTP solver's bind test would
			// look at the wrong address.
			return fmt.Errorf("acme: the cleartext listener (%s) and the TLS listener (%s) must listen on the same host for http-01", httpAddr, tlsAddr)
		}
		m.issuer.AltHTTPPort = p
		m.issuer.DisableHTTPChallenge = false
	}
	if m.issuer.DisableHTTPChallenge && m.issuer.DisableTLSALPNChallenge {
		return errors.New("acme: challenges lists only http-01, and the server has no cleartext listener to answer it")
	}
	if len(domains) == 0 {
		return errors.New("acme: no domain to get a certificate for: set domains, or give the listener's pipelines match { hosts = [...] }")
	}
	m.log.Info("managing certificates", "domains", m.domains, "ca", m.conf.CAURL,
		"http-01", !m.issuer.DisableHTTPChallenge, "tls-alpn-01", !m.issuer.DisableTLSALPNChallenge)
	if err := m.magic.ManageAsync(m.ctx, m.domains); err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	return nil
}

func (m *acmeManager) uses(challenge string) bool {
	for _, c := range m.conf.Challenges {
		if c == challenge {
			return true
		}
	}
	return false
}

// Close ends renewals and any obtaining in progress (the server's shutdown).
func (m *acmeManager) Close() error {
	m.cancel()
	m.cache.Stop()
	if c, ok := m.storage.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// getCertificate is the TLS listener's certificate source (TLSListener.SetCertificateSource):
// the TLS-ALPN-01 challenge certificate for a validation handshake, else the managed
// certificate for the SNI name. Without one it returns (nil, nil): the listener then serves its
// default certificate when its tls block has one, else fails the handshake with an alert.
func (m *acmeManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := m.magic.GetCertificate(hello)
	if err != nil {
		if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPN {
			return nil, err // a validation handshake without a challenge: never fall back
		}
		m.log.Debug("no managed certificate for the handshake", "server_name", hello.ServerName, "err", err)
		return nil, nil
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, nil
	}
	return cert, nil
}

// serveChallenge answers an HTTP-01 validation request for a challenge this instance, or one
// sharing its storage, started, and reports whether it did. Any other request, including one
// under /.well-known/acme-challenge/ that matches no challenge, is left to routing (an upstream
// may run an ACME client of its own). Only requests with that prefix cost more than a compare.
func (m *acmeManager) serveChallenge(fc *fasthttp.RequestCtx) bool {
	target := fc.Request.Header.RequestURI()
	if !bytes.HasPrefix(target, acmeChallengePrefix) || !fc.IsGet() {
		return false
	}
	path, _, _ := bytes.Cut(target, []byte("?"))
	// certmagic's handler is net/http's: hand it the little it reads (method, host, path), with a
	// deadline, and copy what it writes.
	ctx, cancel := context.WithTimeout(m.ctx, challengeLookupTimeout)
	defer cancel()
	r := (&http.Request{
		Method:     http.MethodGet,
		Host:       string(fc.Request.Header.Host()),
		URL:        &url.URL{Path: string(path)},
		RequestURI: string(target),
		RemoteAddr: fc.RemoteAddr().String(),
		Header:     http.Header{"User-Agent": {string(fc.Request.Header.UserAgent())}},
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}).WithContext(ctx)
	w := &challengeWriter{header: http.Header{}}
	if !m.issuer.HandleHTTPChallenge(w, r) {
		return false
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	fc.Response.SetStatusCode(w.status)
	fc.Response.Header.SetContentType("text/plain")
	fc.Response.SetBodyRaw(w.body.Bytes())
	fc.SetConnectionClose() // a validation is one request; certmagic's own server closes too
	return true
}

// challengeLookupTimeout bounds the storage lookup of a challenge another instance started.
const challengeLookupTimeout = 5 * time.Second

// challengeWriter collects what certmagic's HTTP-01 handler writes.
type challengeWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *challengeWriter) Header() http.Header         { return w.header }
func (w *challengeWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *challengeWriter) WriteHeader(status int)      { w.status = status }

// loadRoots reads a PEM bundle of CA certificates.
func loadRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// prepareStorageDir creates the storage directory readable by its owner only (it holds the
// account key and every certificate's private key), and warns when an existing one is open to
// others.
func prepareStorageDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("acme: storage directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("acme: storage directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("acme: storage directory %s is not a directory", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		log.Warn("the ACME storage directory is open to other users; it holds private keys: chmod 700 it", "dir", dir, "mode", st.Mode().Perm().String())
	}
	return nil
}

// splitPort splits a listener's address into host and numeric port.
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "" // certmagic binds "" as every address, which is what 0.0.0.0 or [::] means here
	}
	return host, port, nil
}

// acmeProvider plugs ACME into the TLS listeners whose tls block has an acme block (a
// TLSProvider every registry has).
type acmeProvider struct{}

// CheckTLS checks what the build can of an acme block: that ca_root_file holds certificates
// (the lint of the hcl package checks that there is a domain).
func (acmeProvider) CheckTLS(l *ListenerConfig, env *BuildEnv) error {
	ac := l.TLS.ACME
	if ac == nil {
		return nil
	}
	if ac.Storage == "redis" {
		rc, err := env.RedisConfig(ac.Redis)
		if err != nil {
			return fmt.Errorf("acme: %w", err)
		}
		if rc.Cluster != nil {
			return fmt.Errorf("acme: redis.%s %w", rc.Name, errRedisCluster)
		}
		ac.redis = rc
	}
	if ac.CARootFile == "" {
		return nil
	}
	pem, err := env.ReadFile(ac.CARootFile)
	if err != nil {
		return fmt.Errorf("acme: ca_root_file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return fmt.Errorf("acme: ca_root_file %s holds no PEM certificate", env.Path(ac.CARootFile))
	}
	return nil
}

// CoversHost reports whether the listener's acme block gets a certificate for host.
func (acmeProvider) CoversHost(l *ListenerConfig, host string) bool {
	ac := l.TLS.ACME
	if ac == nil {
		return false
	}
	if len(ac.Domains) > 0 {
		return slices.Contains(ac.Domains, host)
	}
	return acmeDomain(host) // the default domains are the pipelines' hosts
}

// AttachTLS makes the listener's handshakes serve the managed certificates and the TLS-ALPN-01
// challenge certificates, and the server's cleartext listeners answer HTTP-01. Obtaining starts
// when the server serves (Server.startACME): the listeners are bound by then, so certmagic
// never takes their ports.
func (acmeProvider) AttachTLS(l *TLSListener) (io.Closer, error) {
	ac := l.Spec.TLS.ACME
	if ac == nil {
		return nil, nil
	}
	m, err := newACMEManager(ac, l.Dir, l.Log)
	if err != nil {
		return nil, err
	}
	m.tls = l
	l.SetCertificateSource(m.getCertificate)
	// Offered last: crypto/tls picks the server's first protocol the client offers, so only a
	// validator offering nothing but acme-tls/1 negotiates it.
	l.Config.NextProtos = append(l.Config.NextProtos, acmeALPN)
	s := l.srv
	s.acme = append(s.acme, m)
	l.SetHTTPChallenge(s.acmeChallenge)
	return m, nil
}

// acmeChallenge answers an HTTP-01 validation on a cleartext listener (TLSListener.SetHTTPChallenge).
func (s *Server) acmeChallenge(c *Ctx) bool {
	for _, m := range s.acme {
		if m.serveChallenge(c.Fast) {
			return true
		}
	}
	return false
}

// startACME starts, once, obtaining and renewing the certificates of every acme block, when the
// server first serves. HTTP-01 is answered on the server's cleartext listener on port 80, else
// its first cleartext listener. A failure to start is logged: the server serves on, without
// those certificates.
func (s *Server) startACME() {
	s.acmeOnce.Do(func() {
		if len(s.acme) == 0 {
			return
		}
		// The bound addresses: a configured port 0 has become a real one.
		addr := func(l *listener) string {
			if l.bound != "" {
				return l.bound
			}
			return l.cfg.Address
		}
		httpAddr := ""
		for _, l := range s.listeners {
			if l.tls == nil {
				if _, port, _ := net.SplitHostPort(l.cfg.Address); httpAddr == "" || port == "80" {
					httpAddr = addr(l)
				}
			}
		}
		spec := s.gw.Load().Spec
		for _, m := range s.acme {
			if err := m.start(httpAddr, addr(s.listener(m.tls.Name)), spec.ACMEDomains(m.tls.Spec)); err != nil {
				s.log.Error("automatic certificates are off for this listener", "listener", m.tls.Name, "err", err)
			}
		}
	})
}

// acmeSwap starts managing the domains a reloaded configuration adds (with domains defaulting to
// the pipelines' hosts). Certificates of domains it drops stay cached until they expire.
func (s *Server) acmeSwap(gw *Gateway) {
	for _, m := range s.acme {
		if m.domains == nil {
			continue // not started
		}
		var added []string
		for _, d := range gw.Spec.ACMEDomains(m.tls.Spec) {
			if !slices.Contains(m.domains, d) {
				added = append(added, d)
			}
		}
		if len(added) == 0 {
			continue
		}
		m.domains = append(slices.Clip(m.domains), added...)
		if err := m.magic.ManageAsync(m.ctx, added); err != nil {
			s.log.Error("acme: managing the reloaded configuration's new domains", "listener", m.tls.Name, "domains", added, "err", err)
		}
	}
}
