package hcl

import (
	"fmt"
	"net"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
)

// lintACME checks each TLS listener's acme block against the rest of the configuration: there
// must be a domain to get a certificate for, http-01 needs a cleartext listener on the same
// host, and CAs validate on ports 80 and 443.
func (c *Config) lintACME() hcl.Diagnostics {
	var diags hcl.Diagnostics
	all := c.Spec.EffectiveListeners()
	var cleartext []engine.ListenerConfig
	for _, l := range all {
		if l.TLS == nil {
			cleartext = append(cleartext, l)
		}
	}
	for i := range all {
		l := &all[i]
		if l.TLS == nil || l.TLS.ACME == nil {
			continue
		}
		ac := l.TLS.ACME
		at := func(field string) *hcl.Range {
			if l.Implicit {
				return c.where.attrs.at("server."+field, c.where.server)
			}
			rg := c.where.listeners[l.Name]
			return rg.at(field, rg[""])
		}
		if len(c.Spec.ACMEDomains(l)) == 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No domain for ACME",
				Detail:  "The acme block has no domains, and no pipeline served by this listener matches a host a CA could issue a certificate for (wildcards and IP addresses do not count). Set domains = [\"example.com\"], or give a pipeline match { hosts = [\"example.com\"] }.",
				Subject: at("tls.acme")})
		}
		host, port, _ := net.SplitHostPort(l.Address)
		if slices.Contains(ac.Challenges, engine.ChallengeTLSALPN01) && port != "443" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "TLS-ALPN-01 validates on port 443",
				Detail:  fmt.Sprintf("The CA connects to port 443 of each domain to validate TLS-ALPN-01, and this listener is on port %s: unless a port forward or load balancer sends port 443 here, that challenge fails.", port),
				Subject: at(listenAttr(l))})
		}
		if !slices.Contains(ac.Challenges, engine.ChallengeHTTP01) {
			continue
		}
		switch {
		case len(cleartext) == 0 && len(ac.Challenges) == 1:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "HTTP-01 without a cleartext listener",
				Detail:  "The CA validates HTTP-01 over plain HTTP on port 80, and no listener serves plain HTTP. Add a listener without tls (redirect_to_https = true answers challenges too), or use challenges = [\"tls-alpn-01\"].",
				Subject: at("tls.acme.challenges")})
		case len(cleartext) == 0:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "HTTP-01 without a cleartext listener",
				Detail:  "No listener serves plain HTTP, so only TLS-ALPN-01 is used. Add a listener without tls on port 80 for HTTP-01, or leave it out of challenges.",
				Subject: at("tls.acme.challenges")})
		default:
			ch, _, _ := net.SplitHostPort(httpListener(cleartext).Address)
			if ch != host {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "HTTP-01 on another host",
					Detail:  fmt.Sprintf("HTTP-01 is answered by listener %q (%s) and this listener is on %s: both must listen on the same host (such as \":80\" and \":443\").", httpListener(cleartext).Name, httpListener(cleartext).Address, l.Address),
					Subject: at(listenAttr(l))})
			}
		}
	}
	return diags
}

// httpListener is the cleartext listener that answers HTTP-01 (engine.Server.startACME): the one
// on port 80, else the first.
func httpListener(cleartext []engine.ListenerConfig) *engine.ListenerConfig {
	for i := range cleartext {
		if _, port, _ := net.SplitHostPort(cleartext[i].Address); port == "80" {
			return &cleartext[i]
		}
	}
	return &cleartext[0]
}

// listenAttr is the attribute holding a listener's address.
func listenAttr(l *engine.ListenerConfig) string {
	if l.Implicit {
		return "listen"
	}
	return "address"
}
