package engine

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// clientAuthTable is a TLS listener's client authentication: the policy of its tls block's
// client_auth (def) and those of its certificate blocks' client_auth, for the DNS names their
// certificates cover. It is immutable once made; a reload or a changed CA or CRL file makes a
// new one, which TLSListener.setClientAuth swaps in.
type clientAuthTable struct {
	def *clientAuthPolicy // the listener's; nil: no certificate asked for
	// exact names, and wildcard names by the part after "*." (lower-case).
	exact, wild map[string]*clientAuthPolicy
	// perName is true when some name's policy differs from def: only then can a request's
	// Host fall under another policy than its connection's server name (421).
	perName bool
	// policies are the distinct policies, each with its handshake configuration (conf).
	policies []*clientAuthPolicy
	// What the table was made from, to make it again when a file changes.
	tc    *TLSConfig
	dir   string
	files []string
	stamp []fileStamp
}

// clientAuthError is a client_auth block that does not load, with its attribute path in the
// listener block ("tls.client_auth", "tls.certificate[1].client_auth").
type clientAuthError struct {
	field string
	err   error
}

func (e *clientAuthError) Error() string { return e.err.Error() }
func (e *clientAuthError) Unwrap() error { return e.err }

// loadClientAuthTable loads the client_auth blocks of a tls block; nil, nil when it has none.
func loadClientAuthTable(tc *TLSConfig, dir string, log *slog.Logger) (*clientAuthTable, error) {
	t := &clientAuthTable{tc: tc, dir: dir, exact: map[string]*clientAuthPolicy{}, wild: map[string]*clientAuthPolicy{}}
	env := &BuildEnv{Dir: dir}
	byID := map[string]*clientAuthPolicy{}
	load := func(ca *ClientAuthConfig, field string) (*clientAuthPolicy, error) {
		files := ca.Files(env)
		for _, f := range files {
			t.files = append(t.files, f)
			t.stamp = append(t.stamp, stampOf(f)) // before reading: a change meanwhile shows next time
		}
		p, err := loadClientAuth(ca, env, log)
		if err != nil {
			if ce, ok := err.(*clientAuthError); ok {
				return nil, &clientAuthError{field: field + "." + ce.field, err: ce.err}
			}
			return nil, &clientAuthError{field: field, err: err}
		}
		if q, ok := byID[p.id]; ok {
			return q, nil // the same files in the same mode: one policy
		}
		byID[p.id] = p
		t.policies = append(t.policies, p)
		return p, nil
	}
	any := false
	if tc.ClientAuth != nil {
		any = true
		p, err := load(tc.ClientAuth, "tls.client_auth")
		if err != nil {
			return nil, err
		}
		t.def = p
	}
	offset := 0
	if tc.CertFile != "" || tc.KeyFile != "" {
		offset = 1 // certField counts the short form as the first certificate
	}
	for i, cf := range tc.Certificates {
		if cf.ClientAuth == nil {
			continue
		}
		any = true
		field := fmt.Sprintf("tls.certificate[%d].client_auth", i)
		p, err := load(cf.ClientAuth, field)
		if err != nil {
			return nil, err
		}
		certFile := env.Path(cf.CertFile)
		t.files = append(t.files, certFile)
		t.stamp = append(t.stamp, stampOf(certFile))
		names, err := certificateNames(certFile)
		if err != nil {
			return nil, &clientAuthError{field: certField(tc, i+offset, "cert_file"), err: err}
		}
		for _, n := range names {
			t.add(n, p)
		}
	}
	if !any {
		return nil, nil
	}
	return t, nil
}

// certificateNames reads the DNS names the leaf of a PEM certificate file covers.
func certificateNames(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", file)
		}
		if b.Type == "CERTIFICATE" {
			leaf, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			return leaf.DNSNames, nil
		}
	}
}

// add records a name's own policy ("*.example.com" for a wildcard). A name two certificate
// blocks cover keeps the first one's, as the certificate chosen for it is the first one's.
func (t *clientAuthTable) add(name string, p *clientAuthPolicy) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	m := t.exact
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		m, name = t.wild, rest
	}
	if _, taken := m[name]; taken {
		return
	}
	m[name] = p
	if !samePolicy(p, t.def) {
		t.perName = true
	}
}

// forName returns the policy of a server name or host (no port): an exact name, else the
// wildcard one label up, else the listener's. Names are compared ASCII case-insensitively
// (without allocating while they are lower-case, as canonical hosts are).
func forName[S string | []byte](t *clientAuthTable, name S) *clientAuthPolicy {
	if !t.perName {
		return t.def
	}
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	for i := 0; i < len(name); i++ {
		if 'A' <= name[i] && name[i] <= 'Z' {
			return forName(t, strings.ToLower(string(name)))
		}
	}
	if p, ok := t.exact[string(name)]; ok {
		return p
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if p, ok := t.wild[string(name[i+1:])]; ok {
				return p
			}
			break
		}
	}
	return t.def
}

// samePolicy reports whether a and b verify the same way (nil and mode none both ask for no
// certificate).
func samePolicy(a, b *clientAuthPolicy) bool {
	ida, idb := ClientAuthNone, ClientAuthNone
	if a != nil {
		ida = a.id
	}
	if b != nil {
		idb = b.id
	}
	return ida == idb
}

// changed reports whether a file the table was made from changed since.
func (t *clientAuthTable) changed() bool {
	for i, f := range t.files {
		if stampOf(f) != t.stamp[i] {
			return true
		}
	}
	return false
}

// configFor is the handshake configuration for a hello: its server name's policy's, or nil for
// the listener's own (no certificate asked for). ACME's TLS-ALPN-01 validation never presents
// a client certificate: its hellos get the listener's own.
func (t *clientAuthTable) configFor(hello *tls.ClientHelloInfo) *tls.Config {
	if slices.Contains(hello.SupportedProtos, alpnACME) {
		return nil
	}
	p := forName(t, hello.ServerName)
	if p == nil {
		return nil
	}
	return p.conf
}

// hookClientAuth makes the listener's handshakes ask for client certificates as its current
// table says (none while it has none). The server calls it once, after the TLS providers
// attached, so the configurations derived per policy carry what they added.
func (l *TLSListener) hookClientAuth() {
	prev := l.Config.GetConfigForClient
	l.Config.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if t := l.clientAuth.Load(); t != nil {
			if conf := t.configFor(hello); conf != nil {
				return conf, nil
			}
		}
		if prev != nil {
			return prev(hello)
		}
		return nil, nil
	}
}

// setClientAuth makes t the listener's client authentication (nil: none) for handshakes from
// now on: each of its policies gets a configuration derived from the listener's (certificates,
// parameters and rotating ticket keys shared), and the previous table's are let go.
func (l *TLSListener) setClientAuth(t *clientAuthTable) {
	if t != nil {
		for _, p := range t.policies {
			if p.mode != tls.NoClientCert && p.conf == nil {
				p.conf = l.Derive(p.apply)
			}
		}
	}
	old := l.clientAuth.Swap(t)
	if old == nil || old == t {
		return
	}
	l.mu.Lock()
	l.derived = slices.DeleteFunc(l.derived, func(c *tls.Config) bool {
		return slices.ContainsFunc(old.policies, func(p *clientAuthPolicy) bool { return p.conf == c })
	})
	l.mu.Unlock()
}

// maintainClientAuth loads the listener's client authentication again when one of its CA, CRL
// or certificate files changed (a renewed CRL is picked up without a reload). A table that
// does not load leaves the current one in place, logged once per state of the files.
func (l *TLSListener) maintainClientAuth(now time.Time) {
	t := l.clientAuth.Load()
	if t == nil || !t.changed() {
		return
	}
	nt, err := loadClientAuthTable(t.tc, t.dir, l.Log)
	if err != nil {
		l.mu.Lock()
		stamps := make([]fileStamp, len(t.files))
		for i, f := range t.files {
			stamps[i] = stampOf(f)
		}
		fresh := !slices.Equal(stamps, l.clientAuthFailed)
		l.clientAuthFailed = stamps
		l.mu.Unlock()
		if fresh {
			l.Log.Warn("the changed client_auth files do not load; the previous ones stay in use", "err", err)
		}
		return
	}
	l.setClientAuth(nt)
	if exp := nt.expiredCRLs(now); len(exp) > 0 {
		l.Log.Warn("client_auth reloaded with revocation lists past their next update: they refuse every certificate they cover", "crl_files", exp)
	} else {
		l.Log.Info("client_auth files reloaded")
	}
}

// expiredCRLs lists the revocation lists of the table's policies past their next update.
func (t *clientAuthTable) expiredCRLs(now time.Time) []string {
	var out []string
	for _, p := range t.policies {
		out = append(out, p.expiredCRLs(now)...)
	}
	return out
}

// buildClientAuth loads the client_auth blocks of every TLS listener, as Build does everything
// (`sluice validate` reports what `sluice run` would meet), records their files among the
// inputs, and warns about revocation lists already past their next update.
func (g *Gateway) buildClientAuth(spec *Spec, log *slog.Logger) []*BuildError {
	var errs []*BuildError
	g.clientAuth = map[string]*clientAuthTable{}
	all := spec.EffectiveListeners()
	for i := range all {
		l := &all[i]
		if l.TLS == nil {
			continue
		}
		t, err := loadClientAuthTable(l.TLS, spec.Dir, log)
		if t != nil {
			g.Inputs = append(g.Inputs, t.files...)
		}
		if err != nil {
			field := "tls"
			if ce, ok := err.(*clientAuthError); ok {
				field = ce.field
			}
			errs = append(errs, &BuildError{Listener: l.Name, Server: l.Implicit, Field: field, Pipeline: -1, Filter: -1, Err: err})
			continue
		}
		if t == nil {
			continue
		}
		g.clientAuth[l.Name] = t
		if exp := t.expiredCRLs(time.Now()); len(exp) > 0 {
			g.Warnings = append(g.Warnings, &BuildError{Listener: l.Name, Server: l.Implicit, Field: "tls", Pipeline: -1, Filter: -1,
				Err: fmt.Errorf("client_auth: revocation lists past their next update refuse every certificate they cover until replaced: %s", strings.Join(exp, "; "))})
		}
	}
	if m := spec.Server.ForwardClientCert; len(g.clientAuth) == 0 && (m == ForwardCertSanitizeSet || m == ForwardCertAppendForward) {
		g.Warnings = append(g.Warnings, &BuildError{Server: true, Field: "forward_client_cert", Pipeline: -1, Filter: -1,
			Err: fmt.Errorf("forward_client_cert = %q sends the client certificates client_auth verified, and no tls block has a client_auth: upstreams get none", m)})
	}
	return errs
}

// installClientAuth gives the listeners the client authentication gw loaded (NewServer, and a
// reload that keeps the server).
func (s *Server) installClientAuth(gw *Gateway) {
	for _, l := range s.listeners {
		if l.tls != nil {
			l.tls.setClientAuth(gw.clientAuth[l.cfg.Name])
		}
	}
}

// clientAuth returns the client authentication of the listener (nil: none, or no listener).
func (l *listener) clientAuth() *clientAuthTable {
	if l == nil || l.tls == nil {
		return nil
	}
	return l.tls.clientAuth.Load()
}
