package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// buildListeners checks the listeners as Build does everything (so `sluice validate` reports
// what `sluice run` would meet): certificates that do not load, a redirect_to_https without an
// HTTPS listener, addresses used twice, the TLS providers' checks. It loads the certificates for
// the server, records the files among the inputs, and adds warnings for expired certificates
// and pipeline hosts no certificate covers.
func (g *Gateway) buildListeners(spec *Spec, env func(pipeline, stage string, earlier []string) *BuildEnv) []*BuildError {
	var errs []*BuildError
	fail := func(l *ListenerConfig, field string, err error) {
		errs = append(errs, &BuildError{Listener: l.Name, Server: l.Implicit, Field: field, Pipeline: -1, Filter: -1, Err: err})
	}
	warn := func(l *ListenerConfig, field string, err error) {
		g.Warnings = append(g.Warnings, &BuildError{Listener: l.Name, Server: l.Implicit, Field: field, Pipeline: -1, Filter: -1, Err: err})
	}
	all := spec.EffectiveListeners()
	g.certs = map[string]*certSet{}
	addrs := map[string]string{}
	for i := range all {
		l := &all[i]
		if prev, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			fail(l, "address", fmt.Errorf("listener %q already listens on %s", prev, l.Address))
		}
		addrs[l.Address] = l.Name
		if l.RedirectToHTTPS {
			field := "redirect_to_https"
			if l.HTTPSListener != "" {
				field = "https_listener"
			}
			if _, err := HTTPSTarget(l, all); err != nil {
				fail(l, field, err)
			}
		}
		tc := l.TLS
		if tc == nil {
			continue
		}
		e := env("", "listener:"+l.Name, nil)
		for _, cf := range tc.CertificateFiles() {
			g.Inputs = append(g.Inputs, e.Path(cf.CertFile), e.Path(cf.KeyFile))
		}
		set, err := loadCertSet(spec.Dir, tc)
		for _, err := range joined(err) {
			var ce *CertError
			if errors.As(err, &ce) {
				fail(l, certField(tc, ce.Index, ce.Field), err)
			} else {
				fail(l, "tls", err)
			}
		}
		if set != nil {
			g.certs[l.Name] = set
			for _, msg := range set.expiries(time.Now()) {
				warn(l, "tls", errors.New(msg+": clients will refuse it"))
			}
		}
		if tc.SessionTickets && tc.SessionTicketKeyFile != "" {
			g.Inputs = append(g.Inputs, e.Path(tc.SessionTicketKeyFile))
			if _, err := readTicketSecret(e.Path(tc.SessionTicketKeyFile)); err != nil {
				fail(l, "tls.session_ticket_key_file", err)
			}
		}
		for _, p := range g.tlsProviders {
			if err := p.CheckTLS(l, e); err != nil {
				fail(l, "tls", err)
			}
		}
		if set != nil {
			g.checkCoverage(spec, l, set, warn)
		}
	}
	return errs
}

// checkCoverage warns about the hosts of the pipelines a TLS listener serves that none of its
// certificates (nor a provider such as ACME) covers: their clients would get the default
// certificate and refuse it.
func (g *Gateway) checkCoverage(spec *Spec, l *ListenerConfig, set *certSet, warn func(*ListenerConfig, string, error)) {
	for _, ps := range spec.Pipelines {
		if len(ps.Match.Listeners) > 0 && !slices.Contains(ps.Match.Listeners, l.Name) {
			continue
		}
		for _, h := range ps.Match.Hosts {
			if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
				continue // clients reaching an IP address send no server name: the default answers
			}
			if set.covers(h) || g.providerCovers(l, h) {
				continue
			}
			warn(l, "tls", fmt.Errorf("no certificate of listener %q covers host %q of pipeline %q: its clients get the default certificate (%s) and will refuse it; add a certificate for it", l.Name, h, ps.Name, certName(set.all[0])))
		}
	}
}

func (g *Gateway) providerCovers(l *ListenerConfig, host string) bool {
	for _, p := range g.tlsProviders {
		if c, ok := p.(TLSHostCoverer); ok && c.CoversHost(l, host) {
			return true
		}
	}
	return false
}

// certField is the attribute path of field ("cert_file", "key_file") of the i-th certificate
// of tc's CertificateFiles.
func certField(tc *TLSConfig, i int, field string) string {
	if tc.CertFile != "" || tc.KeyFile != "" {
		if i == 0 {
			return "tls." + field
		}
		i--
	}
	return fmt.Sprintf("tls.certificate[%d].%s", i, field)
}

// joined splits an errors.Join error into its parts.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
