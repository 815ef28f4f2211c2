// Package rewrite implements the "rewrite" filter kind: it changes the path, query and Host the
// upstream receives, while routing, authorization and the other filters keep deciding on the
// client's normalized request (Ctx.Path).
package rewrite

import (
	"bytes"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "rewrite"` block.
type Config struct {
	// PathRegex is an RE2 expression matched against the normalized path; PathReplace is its
	// replacement template ($1, ${name}).
	PathRegex string `hcl:"path_regex,optional" json:"path_regex,omitempty"`
	// PathPrefix is replaced by PathReplace at a segment boundary.
	PathPrefix  string            `hcl:"path_prefix,optional" json:"path_prefix,omitempty"`
	PathReplace string            `hcl:"path_replace,optional" json:"path_replace,omitempty"`
	Host        string            `hcl:"host,optional" json:"host,omitempty"`
	AddQuery    map[string]string `hcl:"add_query,optional" json:"add_query,omitempty"`
	RemoveQuery []string          `hcl:"remove_query,optional" json:"remove_query,omitempty"`
}

// groupRef finds the references of a replacement template: $1, $name, ${1}, ${name}.
var groupRef = regexp.MustCompile(`\$(?:\{([^}]*)\}|([A-Za-z0-9_]+))`)

// Validate compiles the expression and checks the template's group references, the host and
// the query parameter names.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.PathRegex != "" && c.PathPrefix != "":
		errs = append(errs, engine.FieldErr("path_prefix", "set either path_regex or path_prefix, not both"))
	case c.PathRegex != "" || c.PathPrefix != "":
		if c.PathReplace == "" {
			errs = append(errs, engine.FieldErr("path_replace", "is required with path_regex or path_prefix (the path the upstream receives, starting with \"/\")"))
		} else if !strings.HasPrefix(c.PathReplace, "/") && !strings.HasPrefix(c.PathReplace, "$") {
			errs = append(errs, engine.FieldErr("path_replace", "must start with \"/\" (or a group reference such as \"$1\" that captured one)"))
		}
		if i := strings.IndexFunc(c.PathReplace, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '?' || r == '#' }); i >= 0 {
			errs = append(errs, engine.FieldErr("path_replace", "must not contain spaces, control characters, '?' or '#' (query parameters go in add_query)"))
		}
	case c.PathReplace != "":
		errs = append(errs, engine.FieldErr("path_replace", "has nothing to replace: set path_regex or path_prefix"))
	}
	if c.PathRegex != "" {
		re, err := regexp.Compile(c.PathRegex)
		if err != nil {
			errs = append(errs, engine.FieldErr("path_regex", "not a valid RE2 expression: %w", err))
		} else {
			errs = append(errs, checkGroups(re, c.PathReplace)...)
		}
	}
	if c.PathPrefix != "" && !strings.HasPrefix(c.PathPrefix, "/") {
		errs = append(errs, engine.FieldErr("path_prefix", "must start with \"/\""))
	}
	if c.Host != "" && !validHost(c.Host) {
		errs = append(errs, engine.FieldErr("host", "%q is not a host name or host:port", c.Host))
	}
	for k, v := range c.AddQuery {
		if k == "" {
			errs = append(errs, engine.FieldErr("add_query", "a parameter name must not be empty"))
		}
		if strings.ContainsFunc(k+v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			errs = append(errs, engine.FieldErr("add_query", "parameter %q: no control characters", k))
		}
	}
	for _, k := range c.RemoveQuery {
		if k == "" {
			errs = append(errs, engine.FieldErr("remove_query", "a parameter name must not be empty"))
		}
	}
	if c.PathRegex == "" && c.PathPrefix == "" && c.Host == "" && len(c.AddQuery) == 0 && len(c.RemoveQuery) == 0 {
		errs = append(errs, engine.FieldErr("path_regex", "the rewrite changes nothing: set path_regex or path_prefix (with path_replace), host, add_query or remove_query"))
	}
	return errors.Join(errs...)
}

// checkGroups reports template references to groups the expression does not have.
func checkGroups(re *regexp.Regexp, tmpl string) []error {
	var errs []error
	names := []string{}
	for _, n := range re.SubexpNames() {
		if n != "" {
			names = append(names, n)
		}
	}
	for _, m := range groupRef.FindAllStringSubmatch(tmpl, -1) {
		ref := m[1] + m[2]
		if ref == "" {
			continue
		}
		if n, ok := atoi(ref); ok {
			if n > re.NumSubexp() {
				errs = append(errs, engine.FieldErr("path_replace", "$%d: path_regex has only %d capture group(s)", n, re.NumSubexp()))
			}
			continue
		}
		if re.SubexpIndex(ref) < 0 {
			msg := "%q is not a named group of path_regex"
			if s := closest(ref, names); s != "" {
				errs = append(errs, engine.FieldErr("path_replace", msg+" (did you mean %q?)", ref, s))
			} else {
				errs = append(errs, engine.FieldErr("path_replace", msg+"; to follow $1 by letters or digits write $${1}x in HCL (${1}x once decoded), or name the group (?P<name>…)", ref))
			}
		}
	}
	return errs
}

func atoi(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' || n > 1000 {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// closest returns the candidate closest to given if it is a likely typo.
func closest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func validHost(h string) bool {
	if strings.HasPrefix(h, "[") { // an IPv6 literal, optionally with a port
		end := strings.IndexByte(h, ']')
		return end > 1 && (end == len(h)-1 || validPort(h[end+1:]))
	}
	name, port, hasPort := strings.Cut(h, ":")
	if name == "" || (hasPort && !validPort(":"+port)) {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_') {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	n, ok := atoi(strings.TrimPrefix(p, ":"))
	return strings.HasPrefix(p, ":") && len(p) > 1 && ok && n > 0 && n < 65536
}

// Register declares the "rewrite" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "rewrite", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		if slices.Contains(env.Earlier, "rewrite") {
			// One target per request: a second rewrite would silently replace the first's.
			return nil, errors.New("a pipeline has at most one rewrite filter: put its rules in one block")
		}
		return New(cfg)
	})
}

// Filter applies a rewrite config. It allocates nothing per request, but for the one slice of
// capture positions Go's regexp returns when a path_regex other than `^/literal(.*)` matches
// (fastpath.go). Its per-request memory is the Ctx's (Ctx.NewUpstreamTarget): it has no pool,
// and no response phase.
type Filter struct {
	re       *regexp.Regexp
	lit      *literalPrefix // path_regex is ^/literal(.*): matched without regexp
	tmpl     template       // path_replace, parsed
	prefix   []byte
	replace  []byte
	host     []byte
	query    bool     // the query is rewritten
	remove   [][]byte // parameter names dropped (the removed ones and the added ones)
	addQuery []byte   // "a=1&b=2", encoded, in sorted order
}

// New builds the filter from a validated config.
func New(cfg *Config) (*Filter, error) {
	f := &Filter{}
	if cfg.PathRegex != "" {
		re, err := regexp.Compile(cfg.PathRegex)
		if err != nil {
			return nil, err
		}
		f.re, f.tmpl = re, parseTemplate(re, cfg.PathReplace)
		f.lit, _ = parseLiteralPrefix(cfg.PathRegex)
	}
	if cfg.PathPrefix != "" {
		f.prefix, f.replace = []byte(cfg.PathPrefix), []byte(cfg.PathReplace)
	}
	if cfg.Host != "" {
		f.host = []byte(cfg.Host)
	}
	if len(cfg.AddQuery) > 0 || len(cfg.RemoveQuery) > 0 {
		f.query = true
		keys := make([]string, 0, len(cfg.AddQuery))
		for k := range cfg.AddQuery {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if len(f.addQuery) > 0 {
				f.addQuery = append(f.addQuery, '&')
			}
			f.addQuery = appendEscaped(f.addQuery, k)
			f.addQuery = append(f.addQuery, '=')
			f.addQuery = appendEscaped(f.addQuery, cfg.AddQuery[k])
			f.remove = append(f.remove, []byte(k))
		}
		for _, k := range cfg.RemoveQuery {
			f.remove = append(f.remove, []byte(k))
		}
	}
	return f, nil
}

// OnRequest computes what the upstream receives and hands it to the balancer, in the request's
// own UpstreamTarget: its buffers are the Ctx's, the request's alone until it ends.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	t := c.NewUpstreamTarget()
	if f.re != nil {
		var lm [4]int // capture positions of a literalPrefix match
		var m []int
		matched, sure := false, false
		if f.lit != nil {
			matched, sure = f.lit.match(c.Path, &lm)
			m = lm[:]
		}
		if !sure {
			// One pass: FindSubmatchIndex returns nil, allocating nothing, when it does not match.
			m = f.re.FindSubmatchIndex(c.Path)
			matched = m != nil
		}
		if matched {
			t.PathBuf = f.tmpl.expand(t.PathBuf, c.Path, m)
			if len(t.PathBuf) == 0 || t.PathBuf[0] != '/' {
				// A group captured nothing where the path should start.
				t.PathBuf = append(t.PathBuf[:0], '/')
				t.PathBuf = f.tmpl.expand(t.PathBuf, c.Path, m)
			}
			t.Path = t.PathBuf
		}
	} else if f.prefix != nil {
		if rest, ok := cutPrefix(c.Path, f.prefix); ok {
			t.PathBuf = append(t.PathBuf, f.replace...)
			if len(rest) > 0 && rest[0] == '/' && len(t.PathBuf) > 0 && t.PathBuf[len(t.PathBuf)-1] == '/' {
				rest = rest[1:] // "/api/" + "/x" is "/api/x"
			}
			t.PathBuf = append(t.PathBuf, rest...)
			t.Path = t.PathBuf
		}
	}
	t.Host = f.host
	if f.query {
		_, raw := engine.RawPath(c.Request)
		t.QueryBuf = f.rewriteQuery(t.QueryBuf, raw)
		t.Query, t.QuerySet = t.QueryBuf, true
	}
	return engine.Continue
}

// OnResponse does nothing: the target's memory is the Ctx's.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly marks the filter for the pipeline: it skips the empty response phase.
func (f *Filter) RequestOnly() {}

// cutPrefix removes prefix from path at a segment boundary ("/v1" is no prefix of "/v10").
func cutPrefix(path, prefix []byte) ([]byte, bool) {
	if !bytes.HasPrefix(path, prefix) {
		return nil, false
	}
	rest := path[len(prefix):]
	if len(rest) > 0 && rest[0] != '/' && prefix[len(prefix)-1] != '/' {
		return nil, false
	}
	return rest, true
}

// rewriteQuery appends the raw query minus the parameters named in f.remove, then f.addQuery.
func (f *Filter) rewriteQuery(dst, raw []byte) []byte {
	for len(raw) > 0 {
		var pair []byte
		if i := bytes.IndexByte(raw, '&'); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
		} else {
			pair, raw = raw, nil
		}
		if len(pair) == 0 {
			continue
		}
		name := pair
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			name = pair[:i]
		}
		if f.removed(name) {
			continue
		}
		if len(dst) > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, pair...)
	}
	if len(f.addQuery) > 0 {
		if len(dst) > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, f.addQuery...)
	}
	return dst
}

func (f *Filter) removed(raw []byte) bool {
	for _, n := range f.remove {
		if decodedEqual(raw, n) {
			return true
		}
	}
	return false
}

// decodedEqual reports whether the form-encoded raw ('+' for space, %XX escapes) decodes to
// name, without decoding into a buffer.
func decodedEqual(raw, name []byte) bool {
	j := 0
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		switch {
		case b == '+':
			b = ' '
		case b == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			b = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		}
		if j >= len(name) || name[j] != b {
			return false
		}
		j++
	}
	return j == len(name)
}

func isHex(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F'
}

func unhex(b byte) byte {
	switch {
	case b >= 'a':
		return b - 'a' + 10
	case b >= 'A':
		return b - 'A' + 10
	}
	return b - '0'
}

// appendEscaped appends s form-encoded: unreserved bytes as they are, every other one as %XX.
func appendEscaped(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~' {
			dst = append(dst, b)
		} else {
			dst = append(dst, '%', hex[b>>4], hex[b&15])
		}
	}
	return dst
}
