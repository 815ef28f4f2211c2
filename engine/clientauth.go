package engine

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Client certificates at the edge (mutual TLS): a tls block's `client_auth { … }` asks clients
// for a certificate, verifies it against ca_file and the CRLs of crl_files, and the server then
// sets the verified identity as ClientCertKey for the request's filters (clientcert.go).

// ClientAuthConfig is a tls block's `client_auth` block.
type ClientAuthConfig struct {
	// Mode is "require" (a handshake without a valid certificate fails), "verify_if_given" (a
	// certificate is optional, but one that is sent must be valid) or "none" (no certificate is
	// asked for: a name's way out of its listener's policy).
	Mode string `hcl:"mode,optional" json:"mode"`
	// CAFile holds the PEM certificates of the certificate authorities client certificates must
	// chain to.
	CAFile string `hcl:"ca_file,optional" json:"ca_file"`
	// CRLFiles are certificate revocation lists (PEM or DER), each signed by a certificate of
	// ca_file; a certificate whose serial one of them lists is refused.
	CRLFiles []string `hcl:"crl_files,optional" json:"crl_files,omitempty"`
}

// Client authentication modes.
const (
	ClientAuthRequire       = "require"
	ClientAuthVerifyIfGiven = "verify_if_given"
	ClientAuthNone          = "none"
)

// SetDefaults fills the block's defaults.
func (c *ClientAuthConfig) SetDefaults() { c.Mode = ClientAuthRequire }

// Validate checks the block.
func (c *ClientAuthConfig) Validate() error {
	var errs []error
	switch c.Mode {
	case ClientAuthRequire, ClientAuthVerifyIfGiven:
		if c.CAFile == "" {
			errs = append(errs, FieldErr("ca_file", "mode %q needs the certificate authorities client certificates must chain to", c.Mode))
		}
	case ClientAuthNone:
		if c.CAFile != "" || len(c.CRLFiles) > 0 {
			errs = append(errs, FieldErr("mode", "mode \"none\" asks for no certificate: remove ca_file and crl_files"))
		}
	default:
		errs = append(errs, FieldErr("mode", "unknown mode %q: use require, verify_if_given or none", c.Mode))
	}
	for _, f := range c.CRLFiles {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, FieldErr("crl_files", "file names must not be empty"))
		}
	}
	return errors.Join(errs...)
}

// Files lists the files the block reads, resolved against dir's config folder.
func (c *ClientAuthConfig) Files(env *BuildEnv) []string {
	if c == nil || c.Mode == ClientAuthNone {
		return nil
	}
	out := []string{env.Path(c.CAFile)}
	for _, f := range c.CRLFiles {
		out = append(out, env.Path(f))
	}
	return out
}

// clientAuthPolicy is a loaded client_auth block: what a handshake under it verifies.
type clientAuthPolicy struct {
	// id tells policies apart: two names whose blocks read the same files in the same mode
	// share one policy, so a request may move between them on one connection.
	id   string
	mode tls.ClientAuthType
	pool *x509.CertPool
	// crls are the revocation lists by the CA that signed them (crlKey).
	crls map[string]*crl
	// parents maps a CA of ca_file that another CA of ca_file issued (an intermediate) to that
	// issuer, by crlKey: crypto/tls ends a chain at the first CA of the pool, and the issuer's
	// CRL must still be able to revoke the intermediate.
	parents map[string]*x509.Certificate
	// conf is the handshake configuration of connections under this policy (nil: the
	// listener's own, for the listener-level policy).
	conf *tls.Config
	log  *slog.Logger
	// loggedCRL is when (unix seconds) an expired CRL was last logged.
	loggedCRL atomic.Int64
}

// crl is a loaded revocation list.
type crl struct {
	file       string
	issuer     string // the CA's subject, for messages
	thisUpdate time.Time
	nextUpdate time.Time // zero: the CRL names none
	revoked    map[string]struct{}
}

// loadClientAuth reads the block's files. Mode none yields a policy that asks for nothing.
func loadClientAuth(c *ClientAuthConfig, env *BuildEnv, log *slog.Logger) (*clientAuthPolicy, error) {
	p := &clientAuthPolicy{log: log}
	switch c.Mode {
	case ClientAuthNone:
		p.id = ClientAuthNone
		p.mode = tls.NoClientCert
		return p, nil
	case ClientAuthRequire:
		p.mode = tls.RequireAndVerifyClientCert
	case ClientAuthVerifyIfGiven:
		p.mode = tls.VerifyClientCertIfGiven
	default:
		return nil, fmt.Errorf("client_auth: unknown mode %q", c.Mode)
	}
	files := c.Files(env)
	p.id = c.Mode + "\x00" + strings.Join(files, "\x00")
	cas, err := readCertificates(files[0])
	if err != nil {
		return nil, &clientAuthError{field: "ca_file", err: fmt.Errorf("reading the client CA file: %w", err)}
	}
	p.pool = x509.NewCertPool()
	for _, ca := range cas {
		p.pool.AddCert(ca)
	}
	p.crls, p.parents = map[string]*crl{}, map[string]*x509.Certificate{}
	for _, c := range cas {
		for _, parent := range cas {
			if c != parent && bytes.Equal(c.RawIssuer, parent.RawSubject) && c.CheckSignatureFrom(parent) == nil {
				p.parents[crlKey(c)] = parent
				break
			}
		}
	}
	for _, f := range files[1:] {
		if err := p.loadCRL(f, cas); err != nil {
			return nil, &clientAuthError{field: "crl_files", err: fmt.Errorf("reading a certificate revocation list: %w", err)}
		}
	}
	return p, nil
}

// readCertificates reads the PEM certificates of a file (at least one).
func readCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return out, nil
}

// loadCRL reads the revocation lists of a file (PEM "X509 CRL" blocks, or one DER list) and
// keeps each under the CA of cas that signed it; a list no CA of cas signed is an error, as
// is a list the gateway could not check at handshakes.
func (p *clientAuthPolicy) loadCRL(file string, cas []*x509.Certificate) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var ders [][]byte
	if bytes.Contains(data, []byte("-----BEGIN")) {
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type == "X509 CRL" {
				ders = append(ders, b.Bytes)
			}
		}
		if len(ders) == 0 {
			return fmt.Errorf("%s holds no PEM \"X509 CRL\" block", file)
		}
	} else {
		ders = [][]byte{data}
	}
	for _, der := range ders {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		var issuer *x509.Certificate
		for _, ca := range cas {
			if bytes.Equal(rl.RawIssuer, ca.RawSubject) && rl.CheckSignatureFrom(ca) == nil {
				issuer = ca
				break
			}
		}
		if issuer == nil {
			return fmt.Errorf("%s: the list issued by %q is not signed by a certificate of ca_file", file, rl.Issuer.String())
		}
		key := crlKey(issuer)
		// Several lists of one CA (an old and a new one concatenated): the newest counts.
		if old, ok := p.crls[key]; ok && !rl.ThisUpdate.After(old.thisUpdate) {
			continue
		}
		c := &crl{file: file, issuer: issuer.Subject.String(), thisUpdate: rl.ThisUpdate, nextUpdate: rl.NextUpdate,
			revoked: make(map[string]struct{}, len(rl.RevokedCertificateEntries))}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				c.revoked[string(e.SerialNumber.Bytes())] = struct{}{}
			}
		}
		p.crls[key] = c
	}
	return nil
}

// crlKey identifies a CA by its name and key: two CAs of one name (a key rollover) each have
// their own list. (The DER subject is self-delimiting, so the concatenation is unambiguous.)
func crlKey(ca *x509.Certificate) string {
	return string(ca.RawSubject) + string(ca.RawSubjectPublicKeyInfo)
}

// expiredCRLs lists the policy's lists whose next update is past at now.
func (p *clientAuthPolicy) expiredCRLs(now time.Time) []string {
	var out []string
	for _, c := range p.crls {
		if !c.nextUpdate.IsZero() && now.After(c.nextUpdate) {
			out = append(out, fmt.Sprintf("%s (%s, next update %s)", c.file, c.issuer, c.nextUpdate.UTC().Format(time.RFC3339)))
		}
	}
	slices.Sort(out)
	return out
}

var (
	errRevoked    = errors.New("the client certificate is revoked")
	errCRLExpired = errors.New("the revocation list of the client certificate's issuer is past its next update")
)

// verifyConnection is the policy's tls.Config.VerifyConnection: crypto/tls has verified the
// chain against the pool, or restored it with a resumed session (a session whose chain the
// policy's pool does not accept is not resumed: crypto/tls checks that since Go 1.21, which
// matters when a session begun under one name's policy is offered under another's); this checks
// revocation, on resumption too.
func (p *clientAuthPolicy) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 || len(p.crls) == 0 {
		return nil // verify_if_given without a certificate; require is enforced by crypto/tls
	}
	now := time.Now()
	// Every chain crypto/tls built must be clean: with an intermediate CA in ca_file (the way to
	// give its CRL), one chain ends at the intermediate and another at its root, and only the
	// latter shows the root's CRL revoking the intermediate.
	for _, chain := range cs.VerifiedChains {
		if err := p.checkChain(chain, now); err != nil {
			return err
		}
	}
	return nil
}

// recheck verifies chains of a connection made before the policy was loaded (under a previous
// CA or CRL file) again: the leaf against the policy's pool, then revocation.
func (p *clientAuthPolicy) recheck(chains [][]*x509.Certificate, now time.Time) error {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return errors.New("no verified chain")
	}
	opts := x509.VerifyOptions{Roots: p.pool, Intermediates: x509.NewCertPool(), CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range chains[0][1:] {
		opts.Intermediates.AddCert(c)
	}
	verified, err := chains[0][0].Verify(opts)
	if err != nil {
		return err
	}
	for _, chain := range verified {
		if err := p.checkChain(chain, now); err != nil {
			return err
		}
	}
	return nil
}

// checkChain checks every certificate of a verified chain (leaf first, root last) against its
// issuer's revocation list, where there is one. An expired list refuses what it covers: it can
// no longer say that a certificate is not revoked (OpenSSL, and so nginx and Envoy, refuse too).
func (p *clientAuthPolicy) checkChain(chain []*x509.Certificate, now time.Time) error {
	// Up from where the chain ends, through the CAs of ca_file that issued its last one.
	for len(chain) <= 16 {
		parent, ok := p.parents[crlKey(chain[len(chain)-1])]
		if !ok {
			break
		}
		chain = append(chain[:len(chain):len(chain)], parent)
	}
	for i := 0; i+1 < len(chain); i++ {
		l, ok := p.crls[crlKey(chain[i+1])]
		if !ok {
			continue
		}
		if !l.nextUpdate.IsZero() && now.After(l.nextUpdate) {
			if last := p.loggedCRL.Load(); now.Unix()-last >= 60 && p.loggedCRL.CompareAndSwap(last, now.Unix()) && p.log != nil {
				p.log.Error("refusing client certificates: a revocation list is past its next update; replace the file",
					"crl_file", l.file, "issuer", l.issuer, "next_update", l.nextUpdate.UTC().Format(time.RFC3339))
			}
			return fmt.Errorf("%w (%s)", errCRLExpired, l.file)
		}
		if _, revoked := l.revoked[string(chain[i].SerialNumber.Bytes())]; revoked {
			return fmt.Errorf("%w (serial %x, %s)", errRevoked, chain[i].SerialNumber, l.file)
		}
	}
	return nil
}

// apply sets the policy on a handshake configuration.
func (p *clientAuthPolicy) apply(conf *tls.Config) {
	conf.ClientAuth = p.mode
	conf.ClientCAs = p.pool
	if p.mode != tls.NoClientCert {
		conf.VerifyConnection = p.verifyConnection
	} else {
		conf.VerifyConnection = nil
	}
}
