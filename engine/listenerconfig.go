package engine

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ListenerConfig is a `listener "NAME"` block: an address the gateway accepts connections on, with
// its protocols, its TLS and the limits it overrides. Everything else (header and body limits,
// trusted proxies, hardening) is the server block's and applies to every listener.
type ListenerConfig struct {
	Name    string `json:"name"`
	Address string `hcl:"address" json:"address"`
	// Protocols the listener speaks: "http1", "h2" (TLS listeners, through ALPN), "h2c" (HTTP/2
	// with prior knowledge on a cleartext listener). Empty: the server's default.
	Protocols []string   `hcl:"protocols,optional" json:"protocols,omitempty"`
	TLS       *TLSConfig `hcl:"tls,block" json:"tls,omitempty"`
	// RedirectToHTTPS answers every request on this cleartext listener with 308 to the same
	// host and path on the HTTPS listener (HTTPSListener, or the only TLS listener), except ACME
	// HTTP-01 challenges (/.well-known/acme-challenge/).
	RedirectToHTTPS bool   `hcl:"redirect_to_https,optional" json:"redirect_to_https"`
	HTTPSListener   string `hcl:"https_listener,optional" json:"https_listener,omitempty"`

	// Overrides of the server block's settings for this listener; zero: the server's.
	ReadTimeout      Duration `hcl:"read_timeout,optional" json:"read_timeout,omitempty"`
	WriteTimeout     Duration `hcl:"write_timeout,optional" json:"write_timeout,omitempty"`
	IdleTimeout      Duration `hcl:"idle_timeout,optional" json:"idle_timeout,omitempty"`
	FirstByteTimeout Duration `hcl:"first_byte_timeout,optional" json:"first_byte_timeout,omitempty"`
	MaxConnections   int      `hcl:"max_connections,optional" json:"max_connections,omitempty"`
	MaxConnsPerIP    int      `hcl:"max_conns_per_ip,optional" json:"max_conns_per_ip,omitempty"`

	// Implicit marks the listener made from the server block's listen and tls (no listener
	// blocks): its diagnostics point at the server block.
	Implicit bool `json:"implicit,omitempty"`
}

// DefaultListenerName names the listener made from the server block when no listener block is
// declared.
const DefaultListenerName = "default"

// Validate checks a listener block on its own; checks across blocks (https_listener, listener
// names in match blocks) are the hcl package's.
func (l *ListenerConfig) Validate() error {
	var errs []error
	if l.Address == "" {
		errs = append(errs, FieldErr("address", "must not be empty"))
	} else if err := CheckListenAddress(l.Address); err != nil {
		errs = append(errs, &FieldError{Field: "address", Err: err})
	}
	if _, err := ParseProtocols(l.Protocols, l.TLS != nil); err != nil {
		errs = append(errs, &FieldError{Field: "protocols", Err: err})
	}
	if l.RedirectToHTTPS && l.TLS != nil {
		errs = append(errs, FieldErr("redirect_to_https", "is for cleartext listeners: this one has a tls block"))
	}
	if l.HTTPSListener != "" && !l.RedirectToHTTPS {
		errs = append(errs, FieldErr("https_listener", "names where redirect_to_https sends requests: set redirect_to_https = true"))
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{{"read_timeout", l.ReadTimeout}, {"write_timeout", l.WriteTimeout}, {"idle_timeout", l.IdleTimeout}, {"first_byte_timeout", l.FirstByteTimeout}} {
		if d.d < 0 {
			errs = append(errs, FieldErr(d.name, "must not be negative (leave it out to use the server's)"))
		}
	}
	if l.MaxConnections < 0 {
		errs = append(errs, FieldErr("max_connections", "must not be negative (leave it out to use the server's)"))
	}
	if l.MaxConnsPerIP < 0 {
		errs = append(errs, FieldErr("max_conns_per_ip", "must not be negative (leave it out to use the server's)"))
	}
	return errors.Join(errs...)
}

// Effective returns the listener's settings with the server block's filled in where the
// listener leaves them out.
func (l *ListenerConfig) effective(s *ServerConfig) ServerConfig {
	e := *s
	e.Listen = l.Address
	e.TLS = l.TLS
	if l.ReadTimeout > 0 {
		e.ReadTimeout = l.ReadTimeout
	}
	if l.WriteTimeout > 0 {
		e.WriteTimeout = l.WriteTimeout
	}
	if l.IdleTimeout > 0 {
		e.IdleTimeout = l.IdleTimeout
	}
	if l.FirstByteTimeout > 0 {
		e.FirstByteTimeout = l.FirstByteTimeout
	}
	if l.MaxConnections > 0 {
		e.MaxConnections = l.MaxConnections
	}
	if l.MaxConnsPerIP > 0 {
		e.MaxConnsPerIP = l.MaxConnsPerIP
	}
	return e
}

// EffectiveListeners returns the spec's listeners: its listener blocks, or, when it declares
// none, the one listener the server block describes (listen and tls), named "default".
func (s *Spec) EffectiveListeners() []ListenerConfig {
	if len(s.Listeners) > 0 {
		return s.Listeners
	}
	return []ListenerConfig{{Name: DefaultListenerName, Address: s.Server.Listen, Protocols: s.Server.Protocols, TLS: s.Server.TLS, Implicit: true}}
}

// HTTPSTarget returns the TLS listener a redirect_to_https listener sends requests to: the one
// https_listener names, else the only TLS listener.
func HTTPSTarget(l *ListenerConfig, all []ListenerConfig) (*ListenerConfig, error) {
	var tlsNames []string
	for i := range all {
		t := &all[i]
		if t.TLS == nil {
			continue
		}
		if l.HTTPSListener == t.Name {
			return t, nil
		}
		tlsNames = append(tlsNames, t.Name)
	}
	switch {
	case l.HTTPSListener != "":
		return nil, fmt.Errorf("there is no TLS listener named %q (TLS listeners: %s)", l.HTTPSListener, quoteList(tlsNames))
	case len(tlsNames) == 0:
		return nil, errors.New("there is no TLS listener to redirect to: declare a listener with a tls block")
	case len(tlsNames) > 1:
		return nil, fmt.Errorf("several TLS listeners (%s): name the one to redirect to with https_listener", quoteList(tlsNames))
	}
	for i := range all {
		if all[i].Name == tlsNames[0] {
			return &all[i], nil
		}
	}
	panic("unreachable")
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// TLSConfig is a listener's `tls` block (or the server block's, for the implicit listener).
type TLSConfig struct {
	// CertFile and KeyFile are one certificate, written the short way; certificate blocks add
	// more (chosen by SNI).
	CertFile     string              `hcl:"cert_file,optional" json:"cert_file,omitempty"`
	KeyFile      string              `hcl:"key_file,optional" json:"key_file,omitempty"`
	Certificates []CertificateConfig `hcl:"certificate,block" json:"certificates,omitempty"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `hcl:"min_version,optional" json:"min_version"`
	// Ciphers are the TLS 1.2 cipher suites (Go's names); TLS 1.3's are not configurable in Go.
	// Empty: DefaultCipherSuites (Mozilla "intermediate").
	Ciphers []string `hcl:"ciphers,optional" json:"ciphers,omitempty"`
	// Curves are the key exchange groups; empty: DefaultCurves.
	Curves []string `hcl:"curves,optional" json:"curves,omitempty"`
	// SessionTickets turns TLS session resumption by tickets on (default) or off.
	SessionTickets bool `hcl:"session_tickets,optional" json:"session_tickets"`
	// SessionTicketKeyFile holds a secret (at least 32 bytes) the ticket keys derive from, so
	// that instances sharing the file resume each other's sessions; empty: a random secret.
	SessionTicketKeyFile string `hcl:"session_ticket_key_file,optional" json:"session_ticket_key_file,omitempty"`
	// SessionTicketRotation is how long a ticket key encrypts new tickets; the previous key
	// still decrypts for as long again.
	SessionTicketRotation Duration `hcl:"session_ticket_rotation,optional" json:"session_ticket_rotation"`
	// ACME gets certificates from an ACME CA for the names no certificate covers (acme.go).
	ACME *ACMEConfig `hcl:"acme,block" json:"acme,omitempty"`
	// ClientAuth asks clients for certificates (mutual TLS, clientauth.go); certificate blocks
	// may set their own for the names their certificate covers.
	ClientAuth *ClientAuthConfig `hcl:"client_auth,block" json:"client_auth,omitempty"`
}

// CertificateConfig is a `certificate` block: a PEM certificate chain and its private key.
type CertificateConfig struct {
	CertFile string `hcl:"cert_file" json:"cert_file"`
	KeyFile  string `hcl:"key_file" json:"key_file"`
	// ClientAuth is the client_auth of the names this certificate covers, instead of the tls
	// block's (clientauthtable.go).
	ClientAuth *ClientAuthConfig `hcl:"client_auth,block" json:"client_auth,omitempty"`
}

// SetDefaults fills the tls block's defaults.
func (t *TLSConfig) SetDefaults() {
	t.MinVersion = "1.2"
	t.SessionTickets = true
	t.SessionTicketRotation = Duration(12 * time.Hour)
}

// CertificateFiles returns the block's certificates: cert_file/key_file first, then the
// certificate blocks, in order. The first is the default for clients that send no or an unknown
// server name.
func (t *TLSConfig) CertificateFiles() []CertificateConfig {
	var out []CertificateConfig
	if t.CertFile != "" || t.KeyFile != "" {
		out = append(out, CertificateConfig{CertFile: t.CertFile, KeyFile: t.KeyFile})
	}
	return append(out, t.Certificates...)
}

// Validate checks the tls block.
func (t *TLSConfig) Validate() error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		field := "cert_file"
		if t.KeyFile == "" {
			field = "key_file"
		}
		errs = append(errs, FieldErr(field, "cert_file and key_file go together"))
	}
	if len(t.CertificateFiles()) == 0 && t.ACME == nil {
		errs = append(errs, errors.New("a tls block needs a certificate: cert_file and key_file, certificate { cert_file = … key_file = … } blocks, or an acme block"))
	}
	if _, err := ParseTLSVersion(t.MinVersion); err != nil {
		errs = append(errs, &FieldError{Field: "min_version", Err: err})
	}
	if _, err := ParseCipherSuites(t.Ciphers); err != nil {
		errs = append(errs, &FieldError{Field: "ciphers", Err: err})
	} else if len(t.Ciphers) > 0 && t.MinVersion == "1.3" {
		errs = append(errs, &FieldError{Field: "ciphers", Warning: true, Err: errors.New("has no effect with min_version = \"1.3\": Go does not let TLS 1.3 cipher suites be configured")})
	}
	if _, err := ParseCurves(t.Curves); err != nil {
		errs = append(errs, &FieldError{Field: "curves", Err: err})
	}
	if t.SessionTicketRotation < Duration(time.Minute) {
		errs = append(errs, FieldErr("session_ticket_rotation", "must be at least 1m"))
	}
	if t.SessionTicketKeyFile != "" && !t.SessionTickets {
		errs = append(errs, FieldErr("session_ticket_key_file", "is unused with session_tickets = false"))
	}
	return errors.Join(errs...)
}

// ParseTLSVersion parses min_version: "1.2" or "1.3" ("" is "1.2").
func ParseTLSVersion(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.0", "1.1":
		return 0, fmt.Errorf("TLS %s is refused: it is deprecated (RFC 8996) and has no secure cipher suites; use \"1.2\" or \"1.3\"", v)
	}
	return 0, fmt.Errorf("unknown TLS version %q: use \"1.2\" or \"1.3\"", v)
}

// DefaultCipherSuites are the TLS 1.2 suites of Mozilla's "intermediate" configuration (v5.7)
// that Go implements (it has no DHE): ECDHE with AES-GCM or ChaCha20-Poly1305. Go orders them
// itself (AES first where the CPU has AES instructions).
var DefaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ParseCipherSuites maps cipher suite names (Go's, which are IANA's) to their ids; nil for none
// (the defaults). Go's insecure suites, and TLS 1.3's (not configurable), are refused.
func ParseCipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var ids []uint16
	var errs []error
	for _, n := range names {
		if id, ok := cipherByName(tls.CipherSuites(), n); ok {
			if isTLS13Suite(id) {
				errs = append(errs, fmt.Errorf("%s is a TLS 1.3 suite: Go does not let TLS 1.3 suites be configured, and always uses all three", n))
				continue
			}
			ids = append(ids, id)
			continue
		}
		if _, ok := cipherByName(tls.InsecureCipherSuites(), n); ok {
			errs = append(errs, fmt.Errorf("%s is insecure and refused (no forward secrecy, RC4, 3DES or CBC with SHA-256)", n))
			continue
		}
		errs = append(errs, fmt.Errorf("unknown cipher suite %q; the TLS 1.2 suites are: %s", n, strings.Join(tls12SuiteNames(), ", ")))
	}
	return ids, errors.Join(errs...)
}

func cipherByName(list []*tls.CipherSuite, name string) (uint16, bool) {
	for _, c := range list {
		if c.Name == name {
			return c.ID, true
		}
	}
	return 0, false
}

func isTLS13Suite(id uint16) bool {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256:
		return true
	}
	return false
}

func tls12SuiteNames() []string {
	var out []string
	for _, c := range tls.CipherSuites() {
		if !isTLS13Suite(c.ID) {
			out = append(out, c.Name)
		}
	}
	return out
}

// DefaultCurves are the key exchange groups offered by default: the hybrid post-quantum
// X25519MLKEM768 (TLS 1.3 only), X25519, P-256 and P-384. Go picks among them in its own order
// (post-quantum first), whatever the order written.
var DefaultCurves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}

var curveNames = []struct {
	name string
	id   tls.CurveID
}{
	{"X25519MLKEM768", tls.X25519MLKEM768},
	{"SecP256r1MLKEM768", tls.SecP256r1MLKEM768},
	{"SecP384r1MLKEM1024", tls.SecP384r1MLKEM1024},
	{"X25519", tls.X25519},
	{"P-256", tls.CurveP256},
	{"P-384", tls.CurveP384},
	{"P-521", tls.CurveP521},
}

// ParseCurves maps curve names to ids; nil for none (the defaults).
func ParseCurves(names []string) ([]tls.CurveID, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var ids []tls.CurveID
	var errs []error
next:
	for _, n := range names {
		for _, c := range curveNames {
			if c.name == n {
				ids = append(ids, c.id)
				continue next
			}
		}
		known := make([]string, len(curveNames))
		for i, c := range curveNames {
			known[i] = c.name
		}
		errs = append(errs, fmt.Errorf("unknown curve %q: use %s", n, strings.Join(known, ", ")))
	}
	if len(errs) == 0 && !slices.ContainsFunc(ids, func(id tls.CurveID) bool {
		return id == tls.X25519 || id == tls.CurveP256 || id == tls.CurveP384 || id == tls.CurveP521
	}) {
		errs = append(errs, errors.New("needs at least one classic curve (X25519, P-256, P-384 or P-521): the post-quantum hybrids work with TLS 1.3 only"))
	}
	return ids, errors.Join(errs...)
}
