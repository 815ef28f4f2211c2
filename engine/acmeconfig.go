package engine

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ACME challenge types Sluice answers itself (acme.go): HTTP-01 on a cleartext listener, TLS-ALPN-01
// on the TLS listener. DNS-01 (and so wildcard names) needs a DNS provider's API and is not offered.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// Let's Encrypt's directories: production is the default ca_url; staging has far higher rate
// limits and certificates no browser trusts, for trying a setup out.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// ACMEConfig is `tls { acme { … } }`: certificates obtained from an ACME CA and renewed in the
// background (acme.go).
type ACMEConfig struct {
	// Email is the ACME account's contact (expiry and policy notices from the CA). Optional.
	Email string `hcl:"email,optional" json:"email"`
	// CAURL is the CA's ACME directory; default Let's Encrypt production.
	CAURL string `hcl:"ca_url,optional" json:"ca_url"`
	// CARootFile is a PEM bundle of roots trusted for the CA's own HTTPS endpoint (a private CA
	// such as Pebble or step-ca), instead of the system roots.
	CARootFile string `hcl:"ca_root_file,optional" json:"ca_root_file"`
	// Challenges are the challenge types to use: "http-01" (needs a cleartext listener, which CAs
	// reach on port 80) and "tls-alpn-01" (the TLS listener, port 443 for CAs). Default both.
	Challenges []string `hcl:"challenges,optional" json:"challenges"`
	// Storage is where accounts, keys and certificates are kept: "dir" (a directory) or "redis"
	// (the redis block Redis names). Instances sharing it share certificates and solve each
	// other's challenges.
	Storage string `hcl:"storage,optional" json:"storage"`
	// StorageDir is the "dir" storage's directory; default DefaultACMEStorageDir().
	StorageDir string `hcl:"storage_dir,optional" json:"storage_dir"`
	// Redis is the redis block of the "redis" storage.
	Redis RedisRef `hcl:"redis,optional" json:"redis,omitempty"`
	// Domains get certificates; default the exact (not wildcard, not IP) hosts of the pipelines'
	// match blocks.
	Domains []string `hcl:"domains,optional" json:"domains,omitempty"`

	// redis is the block Redis names, found when the configuration is built (acmeProvider.CheckTLS).
	redis *RedisConfig
}

// SetDefaults fills the acme block's defaults.
func (a *ACMEConfig) SetDefaults() {
	*a = ACMEConfig{CAURL: LetsEncryptProduction, Challenges: []string{ChallengeHTTP01, ChallengeTLSALPN01}, Storage: "dir"}
}

// Validate checks the acme block.
func (a *ACMEConfig) Validate() error {
	var errs []error
	if a.Email != "" && (strings.Count(a.Email, "@") != 1 || strings.ContainsAny(a.Email, " \t\r\n<>,") || strings.HasPrefix(a.Email, "@") || strings.HasSuffix(a.Email, "@")) {
		errs = append(errs, FieldErr("email", "invalid email address %q", a.Email))
	}
	if u, err := url.Parse(a.CAURL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, FieldErr("ca_url", "must be an https:// URL of an ACME directory (such as %q, or Let's Encrypt staging %q)", LetsEncryptProduction, LetsEncryptStaging))
	}
	if len(a.Challenges) == 0 {
		errs = append(errs, FieldErr("challenges", "must name at least one of %q and %q", ChallengeHTTP01, ChallengeTLSALPN01))
	}
	for i, c := range a.Challenges {
		switch {
		case c != ChallengeHTTP01 && c != ChallengeTLSALPN01:
			hint := ""
			if c == "dns-01" {
				hint = " (DNS-01 needs a DNS provider's API, which Sluice does not have)"
			}
			errs = append(errs, FieldErr("challenges", "unknown challenge %q%s: use %q or %q", c, hint, ChallengeHTTP01, ChallengeTLSALPN01))
		case slices.Contains(a.Challenges[:i], c):
			errs = append(errs, FieldErr("challenges", "%q is listed twice", c))
		}
	}
	switch a.Storage {
	case "dir":
		if a.Redis != "" {
			errs = append(errs, FieldErr("redis", "is for storage = \"redis\""))
		}
	case "redis":
		if a.Redis == "" {
			errs = append(errs, FieldErr("redis", "storage = \"redis\" needs redis = redis.NAME"))
		}
		if a.StorageDir != "" {
			errs = append(errs, FieldErr("storage_dir", "is for storage = \"dir\""))
		}
	default:
		errs = append(errs, FieldErr("storage", "unknown storage %q: use \"dir\" (a directory, which instances may share) or \"redis\"", a.Storage))
	}
	for i, d := range a.Domains {
		switch {
		case strings.HasPrefix(d, "*."):
			errs = append(errs, FieldErr("domains", "wildcard %q: a wildcard certificate needs the DNS-01 challenge, which Sluice does not do; list the names, or use a manual certificate", d))
		case !acmeDomain(d):
			errs = append(errs, FieldErr("domains", "invalid domain %q: want a DNS name such as \"example.com\"", d))
		case slices.Contains(a.Domains[:i], d):
			errs = append(errs, FieldErr("domains", "%q is listed twice", d))
		}
	}
	return errors.Join(errs...)
}

// acmeDomain reports whether d is a DNS name a CA could issue for: lower-case canonical, with a
// dot, and not an IP address.
func acmeDomain(d string) bool {
	if !strings.Contains(d, ".") || strings.Contains(d, ":") {
		return false
	}
	canon, ok := canonicalHost(nil, []byte(d))
	if !ok || string(canon) != d {
		return false
	}
	last := d[strings.LastIndexByte(d, '.')+1:]
	return last != "" && strings.Trim(last, "0123456789") != "" // an all-digit last label is an IPv4 address
}

// ACMEDomains is what the acme block of listener l gets certificates for: its domains, else
// the exact hosts, that a CA could issue for, of the pipelines that serve l.
func (s *Spec) ACMEDomains(l *ListenerConfig) []string {
	a := l.TLS.ACME
	if len(a.Domains) > 0 {
		return a.Domains
	}
	var out []string
	for _, p := range s.Pipelines {
		if len(p.Match.Listeners) > 0 && !slices.Contains(p.Match.Listeners, l.Name) {
			continue
		}
		for _, h := range p.Match.Hosts {
			h = strings.ToLower(h)
			if acmeDomain(h) && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// DefaultACMEStorageDir is where the "dir" storage goes without storage_dir: systemd's
// $STATE_DIRECTORY (StateDirectory=), else $XDG_DATA_HOME/sluice/acme, else
// ~/.local/share/sluice/acme.
func DefaultACMEStorageDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		// systemd lists several directories separated by colons when the unit names several.
		d, _, _ = strings.Cut(d, ":")
		return filepath.Join(d, "acme")
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sluice", "acme")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "sluice", "acme")
	}
	return filepath.Join(".", "sluice-acme")
}
