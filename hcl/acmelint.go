package hcl

import (
	"fmt"
	"net"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
)

// lintACME checks a tls block's acme block against the rest of the configuration: there must be
// a domain to get a certificate for, and a CA validating TLS-ALPN-01 connects to port 443.
func (c *Config) lintACME() hcl.Diagnostics {
	tc := c.Spec.Server.TLS
	if tc == nil || tc.ACME == nil {
		return nil
	}
	ac := tc.ACME
	block := c.where.attrs.at("server.tls.acme", c.where.server)
	var diags hcl.Diagnostics
	if len(c.Spec.ACMEDomains(ac)) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No domain for ACME",
			Detail:  "The acme block has no domains, and no pipeline matches a host a CA could issue a certificate for (wildcards and IP addresses do not count). Set domains = [\"example.com\"], or give a pipeline match { hosts = [\"example.com\"] }.",
			Subject: block})
	}
	if _, port, err := net.SplitHostPort(c.Spec.Server.Listen); err == nil && port != "443" && slices.Contains(ac.Challenges, engine.ChallengeTLSALPN01) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "TLS-ALPN-01 validates on port 443",
			Detail:  fmt.Sprintf("The CA connects to port 443 of each domain to validate TLS-ALPN-01, and the server listens on port %s: unless a port forward or load balancer sends port 443 here, that challenge fails.", port),
			Subject: c.where.attrs.at("server.listen", *block)})
	}
	return diags
}
