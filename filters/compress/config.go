package compress

import (
	"errors"
	"slices"
	"strings"

	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "compress"` block.
type Config struct {
	// Algorithms lists the codings offered, in the server's order of preference: among the
	// codings a client accepts with the same q-value, the earlier one wins.
	Algorithms []string `hcl:"algorithms,optional" json:"algorithms"`
	// Level sets the compression level per algorithm (zstd 1–22, br 0–11, gzip 1–9).
	Level map[string]int `hcl:"level,optional" json:"level,omitempty"`
	// MinSize is the smallest body worth compressing.
	MinSize engine.Size `hcl:"min_size,optional" json:"min_size"`
	// Types lists the media types to compress: "type/subtype", "type/*" or "type/*+suffix".
	Types []string `hcl:"types,optional" json:"types"`
	// DecompressRequests decodes request bodies sent with Content-Encoding gzip, br or zstd
	// before later filters and the upstream see them, bounded by the server's max_body_bytes.
	// Off by default: decoding costs CPU, and most upstreams either decode themselves or never
	// receive encoded bodies.
	DecompressRequests bool `hcl:"decompress_requests,optional" json:"decompress_requests"`
}

// Algorithm names as they appear in Accept-Encoding and Content-Encoding.
const (
	Zstd   = "zstd"
	Brotli = "br"
	Gzip   = "gzip"
)

// levelRange is the accepted level range of each algorithm, and its default.
var levelRange = map[string]struct{ min, max, def int }{
	Zstd:   {1, 22, 3},
	Brotli: {0, 11, 4},
	Gzip:   {1, 9, 5},
}

// DefaultTypes are compressed when a block sets no types: text and the structured text formats.
var DefaultTypes = []string{
	"text/*",
	"application/json",
	"application/*+json",
	"application/javascript",
	"application/xml",
	"application/*+xml",
	"application/wasm",
	"image/svg+xml",
}

// SetDefaults fills the defaults: every algorithm, 1KiB, DefaultTypes.
func (c *Config) SetDefaults() {
	c.Algorithms = []string{Zstd, Brotli, Gzip}
	c.MinSize = 1 << 10
	c.Types = slices.Clone(DefaultTypes)
}

// Validate checks algorithms, levels and types.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Algorithms) == 0 {
		errs = append(errs, engine.FieldErr("algorithms", "must list at least one of \"zstd\", \"br\", \"gzip\""))
	}
	seen := map[string]bool{}
	for _, a := range c.Algorithms {
		if _, ok := levelRange[a]; !ok {
			errs = append(errs, engine.FieldErr("algorithms", "unknown algorithm %q: use \"zstd\", \"br\" or \"gzip\"", a))
			continue
		}
		if seen[a] {
			errs = append(errs, engine.FieldErr("algorithms", "%q is listed twice", a))
		}
		seen[a] = true
	}
	for a, l := range c.Level {
		r, ok := levelRange[a]
		if !ok {
			errs = append(errs, engine.FieldErr("level", "unknown algorithm %q: use \"zstd\", \"br\" or \"gzip\"", a))
			continue
		}
		if l < r.min || l > r.max {
			errs = append(errs, engine.FieldErr("level", "%s level %d is out of range %d–%d", a, l, r.min, r.max))
		}
	}
	if c.MinSize < 0 {
		errs = append(errs, engine.FieldErr("min_size", "must not be negative"))
	}
	if len(c.Types) == 0 {
		errs = append(errs, engine.FieldErr("types", "must list at least one media type such as \"text/*\""))
	}
	for _, t := range c.Types {
		if _, err := parseTypePattern(t); err != nil {
			errs = append(errs, &engine.FieldError{Field: "types", Err: err})
		}
	}
	return errors.Join(errs...)
}

// level returns the configured or default level of algorithm a.
func (c *Config) level(a string) int {
	if l, ok := c.Level[a]; ok {
		return l
	}
	return levelRange[a].def
}

// typePattern matches a media type: exact ("application/json"), by top-level type ("text/*"),
// or by structured-syntax suffix ("application/*+json").
type typePattern struct {
	exact  string // whole type, when neither prefix nor suffix is set
	prefix string // "text/" for "text/*", "application/" for "application/*+json"
	suffix string // "+json" for "application/*+json"
}

func parseTypePattern(s string) (typePattern, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	slash := strings.IndexByte(t, '/')
	if slash <= 0 || slash == len(t)-1 || strings.ContainsAny(t, " ;,") {
		return typePattern{}, errors.New("invalid media type " + quote(s) + ": want \"type/subtype\", \"type/*\" or \"type/*+suffix\"")
	}
	top, sub := t[:slash], t[slash+1:]
	if top == "*" || strings.Contains(top, "*") {
		return typePattern{}, errors.New("invalid media type " + quote(s) + ": the top-level type must be named")
	}
	switch {
	case sub == "*":
		return typePattern{prefix: top + "/"}, nil
	case strings.HasPrefix(sub, "*+") && len(sub) > 2 && !strings.Contains(sub[2:], "*"):
		return typePattern{prefix: top + "/", suffix: sub[1:]}, nil
	case strings.Contains(sub, "*"):
		return typePattern{}, errors.New("invalid media type " + quote(s) + ": a wildcard is only allowed as \"type/*\" or \"type/*+suffix\"")
	}
	return typePattern{exact: t}, nil
}

func quote(s string) string { return "\"" + s + "\"" }

// match reports whether mt (lower-case, parameters removed) matches p.
func (p *typePattern) match(mt []byte) bool {
	if p.exact != "" {
		return string(mt) == p.exact
	}
	if len(mt) < len(p.prefix)+len(p.suffix)+1 || string(mt[:len(p.prefix)]) != p.prefix {
		return false
	}
	return p.suffix == "" || string(mt[len(mt)-len(p.suffix):]) == p.suffix
}
