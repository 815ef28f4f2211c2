// Package ipfilter implements the "ip_filter" filter kind: allow or deny requests by the client
// address (engine.Ctx.ClientAddr, as the server's trusted_proxies decided it) against CIDR
// prefixes, given inline or in files. The most specific (longest) matching prefix decides; an
// address no prefix covers is allowed when there is no allow list, and refused when there is one.
// Refusals are 403.
package ipfilter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var denials = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_ip_filter_denied_total",
	Help: "Requests the ip_filter filter refused, by pipeline.",
}, []string{"pipeline"})

// Config is the body of a `filter "ip_filter"` block.
type Config struct {
	// Allow and Deny list CIDR prefixes ("10.0.0.0/8", "2001:db8::/32") or single addresses.
	Allow []string `hcl:"allow,optional" json:"allow,omitempty"`
	Deny  []string `hcl:"deny,optional" json:"deny,omitempty"`
	// AllowFile and DenyFile name files with one prefix a line ('#' starts a comment), relative to
	// the config file; `sluice run --watch` and a reload read them again.
	AllowFile string `hcl:"allow_file,optional" json:"allow_file,omitempty"`
	DenyFile  string `hcl:"deny_file,optional" json:"deny_file,omitempty"`
}

// Validate checks the inline prefixes (the files are read and checked when the filter is built).
func (c *Config) Validate() error {
	var errs []error
	if len(c.Allow) == 0 && len(c.Deny) == 0 && c.AllowFile == "" && c.DenyFile == "" {
		errs = append(errs, engine.FieldErr("allow", "list prefixes to allow or deny (allow, deny, allow_file or deny_file)"))
	}
	seen := map[netip.Prefix]string{}
	for _, l := range []struct {
		field string
		list  []string
	}{{"allow", c.Allow}, {"deny", c.Deny}} {
		for _, s := range l.list {
			p, err := parsePrefix(s)
			if err != nil {
				errs = append(errs, &engine.FieldError{Field: l.field, Err: err})
				continue
			}
			if other, ok := seen[p]; ok && other != l.field {
				errs = append(errs, engine.FieldErr(l.field, "%s is in both allow and deny: the most specific prefix decides, so one prefix cannot say both", p))
			}
			seen[p] = l.field
		}
	}
	return errors.Join(errs...)
}

// parsePrefix reads "a.b.c.d/n", "v6/n" or a single address. An IPv4-mapped IPv6 prefix
// ("::ffff:10.0.0.0/104") becomes the IPv4 one, as client addresses are unmapped.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("invalid prefix %q: want a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\"", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("invalid address %q: want an IP address or a CIDR prefix", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Zone() != "" {
		return p, fmt.Errorf("%q: a prefix has no zone", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return p, fmt.Errorf("%q has bits set past its length: did you mean %q?", s, m.String())
	}
	return p, nil
}

// Register declares the "ip_filter" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "ip_filter", build)
}

// maxFileBytes bounds a prefix file (100,000 IPv6 prefixes take about 4 MiB).
const maxFileBytes = 64 << 20

func build(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
	f := &Filter{v4: newTrie(32), v6: newTrie(128), denied: denials.WithLabelValues(env.Pipeline)}
	seen := map[netip.Prefix]verdict{}
	add := func(p netip.Prefix, v verdict, where string) error {
		if old, ok := seen[p]; ok && old != v {
			return fmt.Errorf("%s: %s is in both the allow and the deny list: the most specific prefix decides, so one prefix cannot say both", where, p)
		}
		seen[p] = v
		if v == allow {
			f.hasAllow = true
		}
		if p.Addr().Is4() {
			f.v4.insert(p, v)
		} else {
			f.v6.insert(p, v)
		}
		return nil
	}
	for _, l := range []struct {
		list  []string
		v     verdict
		field string
	}{{cfg.Allow, allow, "allow"}, {cfg.Deny, deny, "deny"}} {
		for _, s := range l.list {
			p, err := parsePrefix(s)
			if err != nil {
				return nil, &engine.FieldError{Field: l.field, Err: err}
			}
			if err := add(p, l.v, l.field); err != nil {
				return nil, &engine.FieldError{Field: l.field, Err: err}
			}
		}
	}
	for _, l := range []struct {
		path  string
		v     verdict
		field string
	}{{cfg.AllowFile, allow, "allow_file"}, {cfg.DenyFile, deny, "deny_file"}} {
		if l.path == "" {
			continue
		}
		b, err := env.ReadFile(l.path)
		if err != nil {
			return nil, &engine.FieldError{Field: l.field, Err: fmt.Errorf("reading prefixes: %w", err)}
		}
		if len(b) > maxFileBytes {
			return nil, engine.FieldErr(l.field, "%s is larger than %d MiB", l.path, maxFileBytes>>20)
		}
		if err := readPrefixes(b, func(p netip.Prefix, line int) error {
			return add(p, l.v, fmt.Sprintf("%s:%d", l.path, line))
		}); err != nil {
			return nil, &engine.FieldError{Field: l.field, Err: fmt.Errorf("%s: %w", l.path, err)}
		}
	}
	f.v4.finish()
	f.v6.finish()
	return f, nil
}

// readPrefixes calls fn for each prefix of a file: one a line, '#' starts a comment, blank lines
// are skipped.
func readPrefixes(b []byte, fn func(p netip.Prefix, line int) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		p, err := parsePrefix(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if err := fn(p, n); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Filter refuses the requests whose client address the prefixes deny. It allocates nothing.
type Filter struct {
	v4, v6   *trie
	hasAllow bool // an address no prefix covers is refused
	denied   prometheus.Counter
}

var (
	errDenied    = errors.New("ip_filter: the client address is denied")
	errNotListed = errors.New("ip_filter: the client address is not in the allow list")
	errNoAddr    = errors.New("ip_filter: the request has no client address")
)

// OnRequest answers 403 unless the client address is allowed.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	a := c.ClientAddr
	if !a.IsValid() {
		// Fail closed: a filter that lets in what it cannot check guards nothing.
		return f.refuse(c, errNoAddr)
	}
	a = a.Unmap()
	hi, lo := halves(a)
	var v verdict
	if a.Is4() {
		v = f.v4.lookup(hi, lo)
	} else {
		v = f.v6.lookup(hi, lo)
	}
	switch {
	case v == deny:
		return f.refuse(c, errDenied)
	case v == none && f.hasAllow:
		return f.refuse(c, errNotListed)
	}
	return engine.Continue
}

func (f *Filter) refuse(c *engine.Ctx, err error) engine.Verdict {
	f.denied.Inc()
	c.AddFlags(engine.FlagUnauthorized)
	return c.Fail(403, err)
}

// OnResponse does nothing.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}
