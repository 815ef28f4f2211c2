package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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

// acmeManager gets and renews the certificates of a tls block's acme block.
type acmeManager struct {
	conf    *ACMEConfig
	domains []string
	log     *slog.Logger
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	ctx     context.Context // ends when the server shuts down: background obtaining and retries stop
	cancel  context.CancelFunc
}

// newACMEManager prepares certificate management for ac; start begins it. dir resolves relative
// paths.
func newACMEManager(ac *ACMEConfig, domains []string, dir string, log *slog.Logger) (*acmeManager, error) {
	if len(domains) == 0 {
		return nil, errors.New("acme: no domain to get a certificate for: set domains, or give the pipelines match { hosts = [...] }")
	}
	env := &BuildEnv{Dir: dir}
	var roots *x509.CertPool
	if ac.CARootFile != "" {
		var err error
		if roots, err = loadRoots(env.Path(ac.CARootFile)); err != nil {
			return nil, fmt.Errorf("acme: ca_root_file: %w", err)
		}
	}
	storageDir := ac.StorageDir
	if storageDir == "" {
		storageDir = DefaultACMEStorageDir()
	}
	storageDir = env.Path(storageDir)
	if err := prepareStorageDir(storageDir, log); err != nil {
		return nil, err
	}
	m := &acmeManager{conf: ac, domains: domains, log: log.With("component", "acme")}
	zl := zapToSlog(m.log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: acmeRenewCheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: storageDir},
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
// renewing in the background: it returns at once, and handshakes for a name without a
// certificate yet fail until one arrives.
func (m *acmeManager) start(httpAddr, tlsAddr string) error {
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

// stop ends renewals and any obtaining in progress.
func (m *acmeManager) stop() {
	m.cancel()
	m.cache.Stop()
}

// getCertificate is the TLS listener's GetCertificate: the TLS-ALPN-01 challenge certificate
// for a validation handshake, else the managed certificate for the SNI name. Without one it
// returns (nil, nil), which makes crypto/tls use the tls block's certificate file when there is
// one; else the handshake fails with an alert.
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

// closeValidationConn closes a connection whose TLS handshake negotiated acme-tls/1 and that
// then sends a request: a validation handshake is all such a connection is for (RFC 8737 §3),
// and its certificate is the challenge's, not the site's. Checked on a connection's first
// request only.
func closeValidationConn(fc *fasthttp.RequestCtx) bool {
	if fc.ConnRequestNum() != 1 || !fc.IsTLS() {
		return false
	}
	if st := fc.TLSConnectionState(); st == nil || st.NegotiatedProtocol != acmeALPN {
		return false
	}
	fc.SetStatusCode(fasthttp.StatusMisdirectedRequest)
	fc.SetConnectionClose()
	return true
}

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

// setupACME makes the server's TLS configuration get certificates from its acme block.
func (s *Server) setupACME(gw *Gateway) error {
	ac := s.cfg.TLS.ACME
	if ac == nil {
		return nil
	}
	m, err := newACMEManager(ac, gw.Spec.ACMEDomains(ac), gw.Spec.Dir, s.log)
	if err != nil {
		return err
	}
	s.acme = m
	s.tlsConf.GetCertificate = m.getCertificate
	// Offered last: crypto/tls picks the server's first protocol the client offers, so only a
	// validator offering nothing but acme-tls/1 negotiates it.
	s.tlsConf.NextProtos = append(s.tlsConf.NextProtos, acmeALPN)
	return nil
}

// acmeSwap starts managing the domains a reloaded configuration adds (with domains defaulting to
// the pipelines' hosts). Certificates of domains it drops stay cached until they expire.
func (s *Server) acmeSwap(gw *Gateway) {
	if s.acme == nil {
		return
	}
	var added []string
	for _, d := range gw.Spec.ACMEDomains(s.cfg.TLS.ACME) {
		if !slices.Contains(s.acme.domains, d) {
			added = append(added, d)
		}
	}
	if len(added) == 0 {
		return
	}
	s.acme.domains = append(slices.Clip(s.acme.domains), added...)
	if err := s.acme.magic.ManageAsync(s.acme.ctx, added); err != nil {
		s.log.Error("acme: managing the reloaded configuration's new domains", "domains", added, "err", err)
	}
}

// checkACME checks what Build can about an acme block: that there is a domain to manage and
// that ca_root_file holds certificates.
func checkACME(spec *Spec, ac *ACMEConfig, e *BuildEnv, inputs *[]string) error {
	if len(spec.ACMEDomains(ac)) == 0 {
		return errors.New("acme: no domain to get a certificate for: set domains, or give the pipelines match { hosts = [...] } with names (not wildcards or IP addresses)")
	}
	if ac.CARootFile != "" {
		*inputs = append(*inputs, e.Path(ac.CARootFile))
		if _, err := loadRoots(e.Path(ac.CARootFile)); err != nil {
			return fmt.Errorf("acme: ca_root_file: %w", err)
		}
	}
	return nil
}
