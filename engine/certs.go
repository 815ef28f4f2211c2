package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// certSet is a TLS listener's certificates, indexed by the names they cover. It is immutable
// once made: a reload makes a new set and swaps the listener's pointer, so a handshake keeps
// the certificate it picked whatever happens meanwhile.
type certSet struct {
	all   []*tls.Certificate            // in configuration order; all[0] is the default
	exact map[string][]*tls.Certificate // lower-case DNS name → certificates, in order
	wild  map[string][]*tls.Certificate // "example.com" → the certificates for "*.example.com"
	files []CertificateConfig           // resolved paths, for the watcher
	stamp []fileStamp                   // the files as they were when read
}

// CertError is a certificate that does not load: Index is its position in
// TLSConfig.CertificateFiles, Field "cert_file" or "key_file" when the fault is that file's.
type CertError struct {
	Index int
	Field string
	Err   error
}

func (e *CertError) Error() string { return e.Err.Error() }
func (e *CertError) Unwrap() error { return e.Err }

// loadCertSet reads the certificates of a tls block (paths resolved against dir). Every
// certificate that does not load is a *CertError, joined.
func loadCertSet(dir string, tc *TLSConfig) (*certSet, error) {
	env := &BuildEnv{Dir: dir}
	s := &certSet{exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	var errs []error
	for i, cf := range tc.CertificateFiles() {
		cf = CertificateConfig{CertFile: env.Path(cf.CertFile), KeyFile: env.Path(cf.KeyFile)}
		// Stamped before reading: a change while reading shows as a change next time.
		s.files = append(s.files, cf)
		s.stamp = append(s.stamp, stampOf(cf.CertFile), stampOf(cf.KeyFile))
		cert, err := loadKeyPair(cf)
		if err != nil {
			errs = append(errs, &CertError{Index: i, Field: err.field, Err: err.err})
			continue
		}
		s.add(cert)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

type keyPairError struct {
	field string
	err   error
}

// loadKeyPair reads one certificate and its key, saying which file is at fault.
func loadKeyPair(cf CertificateConfig) (*tls.Certificate, *keyPairError) {
	certPEM, err := os.ReadFile(cf.CertFile)
	if err != nil {
		return nil, &keyPairError{"cert_file", fmt.Errorf("reading the certificate: %w", err)}
	}
	keyPEM, err := os.ReadFile(cf.KeyFile)
	if err != nil {
		return nil, &keyPairError{"key_file", fmt.Errorf("reading the private key: %w", err)}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		field := "key_file"
		if strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "does not match") {
			field = "cert_file"
		}
		return nil, &keyPairError{field, fmt.Errorf("%s with %s: %w", cf.CertFile, cf.KeyFile, err)}
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &keyPairError{"cert_file", fmt.Errorf("parsing %s: %w", cf.CertFile, err)}
		}
	}
	return &cert, nil
}

func (s *certSet) add(c *tls.Certificate) {
	s.all = append(s.all, c)
	for _, n := range c.Leaf.DNSNames {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if parent, ok := strings.CutPrefix(n, "*."); ok {
			s.wild[parent] = append(s.wild[parent], c)
		} else {
			s.exact[n] = append(s.exact[n], c)
		}
	}
}

// pick chooses the certificate for a client hello: one for its exact server name, else one
// whose wildcard covers it, else nil (the caller falls back to the default, all[0]). Among
// several for the same name, the first the client can use (an ECDSA and an RSA certificate for
// one name: the client's signature algorithms decide).
func (s *certSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := hello.ServerName
	if name == "" {
		return nil
	}
	// Go lower-cases nothing for us: server names are case-insensitive (RFC 6066 §3).
	name = lowerName(strings.TrimSuffix(name, "."))
	if c := supported(hello, s.exact[name]); c != nil {
		return c
	}
	// A wildcard covers exactly one label (RFC 6125 §6.4.3): "*.example.com" covers
	// "a.example.com", not "example.com" nor "a.b.example.com".
	if _, parent, ok := strings.Cut(name, "."); ok && parent != "" {
		return supported(hello, s.wild[parent])
	}
	return nil
}

// defaultFor is the default certificate, among those with the default's name the first the
// client supports.
func (s *certSet) defaultFor(hello *tls.ClientHelloInfo) *tls.Certificate {
	for _, c := range s.all {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return s.all[0]
}

func supported(hello *tls.ClientHelloInfo, certs []*tls.Certificate) *tls.Certificate {
	switch len(certs) {
	case 0:
		return nil
	case 1:
		return certs[0]
	}
	for _, c := range certs {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return certs[0]
}

func lowerName(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// covers reports whether some certificate of the set is valid for host (a DNS name; an IP
// address is never sent as a server name, so clients reaching it get the default).
func (s *certSet) covers(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if wildParent, ok := strings.CutPrefix(host, "*."); ok {
		// A pipeline host "*.example.com" is covered by a wildcard certificate for it.
		return len(s.wild[wildParent]) > 0
	}
	if len(s.exact[host]) > 0 {
		return true
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		return len(s.wild[parent]) > 0
	}
	return false
}

// expiries lists the certificates that are expired or not yet valid at now.
func (s *certSet) expiries(now time.Time) []string {
	var out []string
	for i, c := range s.all {
		switch {
		case now.After(c.Leaf.NotAfter):
			out = append(out, fmt.Sprintf("certificate %d (%s) expired on %s", i+1, certName(c), c.Leaf.NotAfter.UTC().Format(time.DateOnly)))
		case now.Before(c.Leaf.NotBefore):
			out = append(out, fmt.Sprintf("certificate %d (%s) is not valid before %s", i+1, certName(c), c.Leaf.NotBefore.UTC().Format(time.DateTime)))
		}
	}
	return out
}

func certName(c *tls.Certificate) string {
	if len(c.Leaf.DNSNames) > 0 {
		return strings.Join(c.Leaf.DNSNames, ", ")
	}
	return c.Leaf.Subject.CommonName
}

// changed reports whether a file of the set differs from when it was read.
func (s *certSet) changed() bool {
	for i, cf := range s.files {
		if stampOf(cf.CertFile) != s.stamp[2*i] || stampOf(cf.KeyFile) != s.stamp[2*i+1] {
			return true
		}
	}
	return false
}

// fileStamp tells a file's versions apart: a rewritten file has a new time or size, one
// replaced by a rename a new inode. The zero stamp stands for a missing file.
type fileStamp struct {
	mod   time.Time
	size  int64
	inode uint64
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{mod: st.ModTime(), size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.inode = sys.Ino
	}
	return s
}
