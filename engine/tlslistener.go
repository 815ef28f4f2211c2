package engine

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TLSListener is a TLS listener's handshake side: its certificates, chosen by SNI and swapped
// atomically when their files change or the configuration reloads, its tls.Config, and the
// seam where other certificate sources (ACME) and client authentication (mTLS) plug in, through
// a TLSProvider registered with Registry.RegisterTLS.
//
// Providers get the TLSListener in AttachTLS, before the server serves, and may:
//   - SetCertificateSource: certificates for the names no certificate block covers (ACME), and
//     the acme-tls/1 challenge certificates;
//   - set Config.GetConfigForClient to answer a hello with a different configuration (client
//     authentication per server name), building those configurations with Derive so that they
//     keep the listener's certificates, parameters and session ticket keys;
//   - append to Config.NextProtos (acme-tls/1);
//   - SetHTTPChallenge: answer /.well-known/acme-challenge/ on the server's cleartext listeners.
type TLSListener struct {
	Name string
	Spec *ListenerConfig
	// Dir resolves the relative paths of the configuration.
	Dir string
	Log *slog.Logger
	// Config is what the listener's handshakes use. Its GetCertificate is the listener's
	// (GetCertificate below); leave it.
	Config *tls.Config

	certs   atomic.Pointer[certSet]
	source  atomic.Pointer[CertificateSource]
	tickets *ticketKeys
	srv     *Server

	mu      sync.Mutex
	derived []*tls.Config // configurations made by Derive, for the ticket key rotation
	// failedStamp is the certificate files' state when reloading them last failed: the warning
	// is logged once per state, not at every poll.
	failedStamp []fileStamp
	// clientAuth is the listener's client certificate policies (clientauthtable.go); nil: none.
	// clientAuthFailed is like failedStamp, for its files.
	clientAuth       atomic.Pointer[clientAuthTable]
	clientAuthFailed []fileStamp
}

// CertificateSource supplies a certificate for a client hello that the listener's certificate
// blocks do not cover by name; nil and no error: it has none (the default certificate is used).
type CertificateSource func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// TLSProvider plugs into every TLS listener of a gateway (Registry.RegisterTLS): ACME
// certificates, client authentication.
type TLSProvider interface {
	// CheckTLS checks a TLS listener's block when the configuration is built (`sluice
	// validate` too): files it needs are read with env.ReadFile, so `sluice run --watch`
	// watches them.
	CheckTLS(l *ListenerConfig, env *BuildEnv) error
	// AttachTLS wires the provider into a TLS listener as the server is made, before it
	// serves. A non-nil io.Closer is closed when the server shuts down.
	AttachTLS(l *TLSListener) (io.Closer, error)
}

// TLSHostCoverer is implemented by a TLSProvider that supplies certificates for names (ACME):
// the check that every pipeline host has a certificate on a TLS listener asks it.
type TLSHostCoverer interface {
	CoversHost(l *ListenerConfig, host string) bool
}

// GetCertificate picks the certificate for a hello: a certificate block's for the exact server
// name, else one whose wildcard covers it, else the certificate source's (ACME), else the
// default (the first certificate). A TLS-ALPN-01 challenge hello goes to the source first.
func (l *TLSListener) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	src := l.source.Load()
	if src != nil && slices.Contains(hello.SupportedProtos, alpnACME) {
		return (*src)(hello)
	}
	set := l.certs.Load()
	if set != nil {
		if c := set.pick(hello); c != nil {
			return c, nil
		}
	}
	if src != nil {
		c, err := (*src)(hello)
		if c != nil && err == nil {
			return c, nil
		}
		if set == nil || len(set.all) == 0 {
			if err == nil {
				err = fmt.Errorf("no certificate for %q", hello.ServerName)
			}
			return nil, err
		}
	}
	if set == nil || len(set.all) == 0 {
		return nil, fmt.Errorf("listener %q has no certificate", l.Name)
	}
	return set.defaultFor(hello), nil
}

// SetCertificateSource installs src (nil removes it).
func (l *TLSListener) SetCertificateSource(src CertificateSource) {
	if src == nil {
		l.source.Store(nil)
		return
	}
	l.source.Store(&src)
}

// Derive returns a copy of Config changed by edit (GetConfigForClient cleared), whose session
// ticket keys rotate with the listener's. Use it for the configurations GetConfigForClient
// returns.
func (l *TLSListener) Derive(edit func(*tls.Config)) *tls.Config {
	c := l.Config.Clone()
	c.GetConfigForClient = nil
	if edit != nil {
		edit(c)
	}
	l.mu.Lock()
	l.derived = append(l.derived, c)
	if l.tickets != nil {
		c.SetSessionTicketKeys(l.tickets.current)
	}
	l.mu.Unlock()
	return c
}

// SetHTTPChallenge makes h answer requests for /.well-known/acme-challenge/ on the server's
// cleartext listeners (also those that redirect to HTTPS); h reports whether it answered,
// otherwise the request is routed as usual.
func (l *TLSListener) SetHTTPChallenge(h func(c *Ctx) bool) { l.srv.challenge.Store(&h) }

// CoveredByCertificates reports whether a certificate block covers host.
func (l *TLSListener) CoveredByCertificates(host string) bool {
	set := l.certs.Load()
	return set != nil && set.covers(host)
}

// newTLSListener makes the handshake side of a TLS listener from its block and the
// certificates already loaded for it (set, nil: load them).
func newTLSListener(s *Server, spec *ListenerConfig, dir string, set *certSet) (*TLSListener, error) {
	tc := spec.TLS
	l := &TLSListener{Name: spec.Name, Spec: spec, Dir: dir, Log: s.log.With("listener", spec.Name), srv: s}
	if set == nil {
		var err error
		if set, err = loadCertSet(dir, tc); err != nil {
			return nil, fmt.Errorf("listener %q: %w", spec.Name, err)
		}
	}
	l.certs.Store(set)
	conf, err := baseTLSConfig(tc)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", spec.Name, err)
	}
	conf.GetCertificate = l.GetCertificate
	if tc.SessionTickets {
		l.tickets, err = newTicketKeys(tc, dir)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", spec.Name, err)
		}
		conf.SetSessionTicketKeys(l.tickets.current)
	}
	l.Config = conf
	return l, nil
}

// baseTLSConfig is the tls.Config of a tls block's parameters, without certificates.
func baseTLSConfig(tc *TLSConfig) (*tls.Config, error) {
	minV, err := ParseTLSVersion(tc.MinVersion)
	if err != nil {
		return nil, err
	}
	ciphers, err := ParseCipherSuites(tc.Ciphers)
	if err != nil {
		return nil, err
	}
	if ciphers == nil {
		ciphers = slices.Clone(DefaultCipherSuites)
	}
	curves, err := ParseCurves(tc.Curves)
	if err != nil {
		return nil, err
	}
	if curves == nil {
		curves = slices.Clone(DefaultCurves)
	}
	return &tls.Config{
		MinVersion:             minV,
		CipherSuites:           ciphers,
		CurvePreferences:       curves,
		NextProtos:             []string{"http/1.1"},
		SessionTicketsDisabled: !tc.SessionTickets,
	}, nil
}

// maintain reloads the certificates whose files changed and rotates the session ticket keys;
// the server calls it every certPoll.
func (l *TLSListener) maintain(now time.Time) {
	if set := l.certs.Load(); set != nil && set.changed() {
		l.reloadFiles(set)
	}
	l.maintainClientAuth(now)
	if l.tickets != nil {
		// Under mu: Derive reads the keys, maybe from a provider's goroutine.
		l.mu.Lock()
		if l.tickets.update(now, l.Log) {
			l.Config.SetSessionTicketKeys(l.tickets.current)
			for _, c := range l.derived {
				c.SetSessionTicketKeys(l.tickets.current)
			}
		}
		l.mu.Unlock()
	}
}

// reloadFiles reads the listener's certificate files again. A set that does not load (a
// certificate written before its key, a file half-written) leaves the current one serving and
// is tried again at the next poll.
func (l *TLSListener) reloadFiles(old *certSet) {
	set, err := loadCertSet(l.Dir, l.Spec.TLS)
	if err != nil {
		l.mu.Lock()
		stamps := slices.Clone(old.stamp)
		for i, cf := range old.files {
			stamps[2*i], stamps[2*i+1] = stampOf(cf.CertFile), stampOf(cf.KeyFile)
		}
		fresh := !slices.Equal(stamps, l.failedStamp)
		l.failedStamp = stamps
		l.mu.Unlock()
		if fresh {
			l.Log.Warn("the changed certificate files do not load; the previous certificates stay in use", "err", err)
		}
		return
	}
	l.install(set)
	l.Log.Info("certificates reloaded", "certificates", len(set.all))
}

// install makes set the listener's certificates, for the handshakes that start from now on.
func (l *TLSListener) install(set *certSet) {
	l.certs.Store(set)
	l.mu.Lock()
	l.failedStamp = nil
	l.mu.Unlock()
}

// ticketKeys are a listener's session ticket keys. Each rotation period (an epoch of
// session_ticket_rotation since the Unix epoch) has a key derived from a secret with
// HMAC-SHA256: instances that share the secret (session_ticket_key_file) and a clock derive
// the same keys and rotate together with no coordination. The current epoch's key encrypts new
// tickets; the previous epoch's and the next one's (for a peer whose clock runs ahead) still
// decrypt, so a ticket lives at most two rotation periods.
type ticketKeys struct {
	rotation time.Duration
	file     string
	stamp    fileStamp
	secret   []byte
	epoch    int64
	current  [][32]byte
}

// minTicketSecret is the smallest session_ticket_key_file accepted.
const minTicketSecret = 32

func newTicketKeys(tc *TLSConfig, dir string) (*ticketKeys, error) {
	t := &ticketKeys{rotation: tc.SessionTicketRotation.D()}
	if t.rotation <= 0 {
		t.rotation = 12 * time.Hour
	}
	if tc.SessionTicketKeyFile != "" {
		t.file = (&BuildEnv{Dir: dir}).Path(tc.SessionTicketKeyFile)
		t.stamp = stampOf(t.file)
		secret, err := readTicketSecret(t.file)
		if err != nil {
			return nil, err
		}
		t.secret = secret
	} else {
		t.secret = make([]byte, 32)
		_, _ = rand.Read(t.secret) // crypto/rand.Read never fails (Go 1.24+)
	}
	t.derive(time.Now())
	return t, nil
}

// readTicketSecret reads a session ticket key file: any bytes (random ones, or their base64 or
// hex text), at least 32 of them.
func readTicketSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading session_ticket_key_file: %w", err)
	}
	if len(b) < minTicketSecret {
		return nil, fmt.Errorf("session_ticket_key_file %s holds %d bytes: it needs at least %d random ones (such as the output of `openssl rand -base64 48`)", path, len(b), minTicketSecret)
	}
	return b, nil
}

func (t *ticketKeys) derive(now time.Time) {
	t.epoch = now.UnixNano() / int64(t.rotation)
	t.current = [][32]byte{t.key(t.epoch), t.key(t.epoch - 1), t.key(t.epoch + 1)}
}

func (t *ticketKeys) key(epoch int64) [32]byte {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte("sluice session ticket key\x00"))
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(epoch))
	m.Write(e[:])
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

// update rotates the keys when a new epoch has begun or the key file changed; it reports
// whether they changed.
func (t *ticketKeys) update(now time.Time, log *slog.Logger) bool {
	changed := false
	if t.file != "" {
		if st := stampOf(t.file); st != t.stamp {
			t.stamp = st
			if secret, err := readTicketSecret(t.file); err != nil {
				log.Warn("the session ticket key file changed but does not load; the previous keys stay in use", "err", err)
			} else if !hmac.Equal(secret, t.secret) {
				t.secret = secret
				changed = true
			}
		}
	}
	if changed || now.UnixNano()/int64(t.rotation) != t.epoch {
		t.derive(now)
		return true
	}
	return false
}
