// Package redirect implements the "redirect" filter kind: it answers every request with a
// redirect whose Location is built from the configured scheme, host, port and path, keeping the
// client's path and query where the configuration does not replace them.
package redirect

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/agext/levenshtein"
	"github.com/sluice-gateway/sluice/engine"
)

// Config is the body of a `filter "redirect"` block.
type Config struct {
	Status int    `hcl:"status,optional" json:"status"`
	HTTPS  bool   `hcl:"https,optional" json:"https,omitempty"`
	Scheme string `hcl:"scheme,optional" json:"scheme,omitempty"`
	Host   string `hcl:"host,optional" json:"host,omitempty"`
	Port   int    `hcl:"port,optional" json:"port,omitempty"`
	// Path replaces the client's path; empty keeps it.
	Path      string `hcl:"path,optional" json:"path,omitempty"`
	KeepQuery bool   `hcl:"keep_query,optional" json:"keep_query"`
}

// SetDefaults: 308 (permanent, method and body kept), the client's query kept.
func (c *Config) SetDefaults() {
	c.Status = 308
	c.KeepQuery = true
}

var (
	statuses = []int{301, 302, 303, 307, 308}
	schemes  = []string{"http", "https"}
)

// Validate checks the status, scheme, host, port and path.
func (c *Config) Validate() error {
	var errs []error
	if !slices.Contains(statuses, c.Status) {
		errs = append(errs, engine.FieldErr("status", "%d is not a redirect status: use 301, 302, 303, 307 or 308", c.Status))
	}
	if c.Scheme != "" && !slices.Contains(schemes, c.Scheme) {
		msg := fmt.Sprintf("unknown scheme %q: use \"http\" or \"https\"", c.Scheme)
		best, bestDist := "", 3
		for _, s := range schemes {
			if d := levenshtein.Distance(strings.ToLower(c.Scheme), s, nil); d < bestDist {
				best, bestDist = s, d
			}
		}
		if best != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", best)
		}
		errs = append(errs, engine.FieldErr("scheme", "%s", msg))
	}
	if c.HTTPS && c.Scheme == "http" {
		errs = append(errs, engine.FieldErr("https", "contradicts scheme = \"http\""))
	}
	if c.Host != "" && !validHostName(c.Host) {
		errs = append(errs, engine.FieldErr("host", "%q is not a host name (letters, digits, '-', '.'; the port goes in port)", c.Host))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, engine.FieldErr("port", "%d is out of range 1–65535", c.Port))
	}
	if c.Path != "" {
		if !strings.HasPrefix(c.Path, "/") || strings.HasPrefix(c.Path, "//") {
			errs = append(errs, engine.FieldErr("path", "must start with a single \"/\""))
		}
		if strings.ContainsFunc(c.Path, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\\' || r == '#' }) {
			errs = append(errs, engine.FieldErr("path", "must not contain spaces, control characters, '\\\\' or '#'"))
		}
	}
	return errors.Join(errs...)
}

func validHostName(h string) bool {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") && len(h) > 2 {
		return strings.Trim(h[1:len(h)-1], "0123456789abcdefABCDEF:.") == ""
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.') {
			return false
		}
	}
	return h != ""
}

// Register declares the "redirect" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "redirect", func(cfg *Config, _ *engine.BuildEnv) (engine.Filter, error) {
		return New(cfg), nil
	})
}

// Filter answers with a redirect. It allocates nothing per request.
type Filter struct {
	status   int
	absolute bool   // the Location names a scheme and host (else it is a path only)
	scheme   []byte // "https://"; empty: the request's own
	host     []byte // empty: the request's own (its port dropped when the scheme or port changes)
	port     []byte // ":8443", or empty
	path     []byte // empty: the client's (normalized) path
	keepHost bool   // use the request's host
	keepPort bool   // keep the request's port with its host
	query    bool
	bufs     sync.Pool
}

// New builds the filter from a validated config.
func New(cfg *Config) *Filter {
	f := &Filter{status: cfg.Status, path: []byte(cfg.Path), query: cfg.KeepQuery}
	f.bufs.New = func() any { b := make([]byte, 0, 256); return &b }
	scheme := cfg.Scheme
	if cfg.HTTPS {
		scheme = "https"
	}
	f.absolute = scheme != "" || cfg.Host != "" || cfg.Port != 0
	if scheme != "" {
		f.scheme = []byte(scheme + "://")
	}
	f.host = []byte(cfg.Host)
	f.keepHost = cfg.Host == ""
	// The client's port only means something for the scheme it used.
	f.keepPort = cfg.Host == "" && scheme == "" && cfg.Port == 0
	if cfg.Port != 0 {
		f.port = []byte(":" + strconv.Itoa(cfg.Port))
	}
	return f
}

// OnRequest answers with the redirect.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	bp := f.bufs.Get().(*[]byte)
	b, ok := f.location((*bp)[:0], c)
	if !ok {
		f.bufs.Put(bp)
		c.Response.Reset()
		engine.WriteError(c.Response, 400)
		return engine.Respond
	}
	c.Response.Reset()
	c.Response.SetStatusCode(f.status)
	c.Response.Header.SetBytesKV(hdrLocation, b)
	*bp = b
	f.bufs.Put(bp)
	return engine.Respond
}

var hdrLocation = []byte("Location")

// location appends the Location value. ok is false when it needs the request's Host and that
// is missing or not a plain host[:port].
func (f *Filter) location(b []byte, c *engine.Ctx) ([]byte, bool) {
	if f.absolute {
		if len(f.scheme) > 0 {
			b = append(b, f.scheme...)
		} else if c.Fast != nil && c.Fast.IsTLS() {
			b = append(b, "https://"...)
		} else {
			b = append(b, "http://"...)
		}
		if f.keepHost {
			host := c.Request.Header.Host()
			name, port := splitHostPort(host)
			if !validRequestHost(name, port) {
				return b, false
			}
			b = append(b, name...)
			if f.keepPort {
				b = append(b, port...)
			}
		} else {
			b = append(b, f.host...)
		}
		b = append(b, f.port...)
	}
	if len(f.path) > 0 {
		b = append(b, f.path...)
	} else {
		b = appendSafePath(b, c.Path)
	}
	if f.query {
		if _, q := engine.RawPath(c.Request); len(q) > 0 {
			b = append(b, '?')
			b = append(b, q...)
		}
	}
	return b, true
}

// appendSafePath appends the normalized path so that it can only be read as a path: it starts
// with exactly one '/' (never "//evil", which a browser reads as another host), and a '\'
// (which browsers treat as '/') is escaped.
func appendSafePath(b, p []byte) []byte {
	b = append(b, '/')
	for len(p) > 0 && (p[0] == '/' || p[0] == '\\') {
		p = p[1:]
	}
	for _, ch := range p {
		if ch == '\\' {
			b = append(b, "%5C"...)
			continue
		}
		b = append(b, ch)
	}
	return b
}

// splitHostPort splits "host:port" (or "[v6]:port"); port keeps its ':'.
func splitHostPort(h []byte) (name, port []byte) {
	end := len(h)
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			end = i
			break
		}
		if h[i] < '0' || h[i] > '9' {
			break
		}
	}
	if end < len(h) && (h[0] != '[' || h[end-1] == ']') {
		return h[:end], h[end:]
	}
	return h, nil
}

func validRequestHost(name, port []byte) bool {
	if len(name) == 0 || len(port) == 1 {
		return false
	}
	if name[0] == '[' {
		if name[len(name)-1] != ']' || len(name) < 3 {
			return false
		}
		for _, ch := range name[1 : len(name)-1] {
			if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F' || ch == ':' || ch == '.') {
				return false
			}
		}
		return true
	}
	for _, ch := range name {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_') {
			return false
		}
	}
	return true
}

// OnResponse does nothing: the redirect is the response.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}

// AlwaysAnswers: a pipeline ending in redirect needs no balancer (engine.AlwaysAnswers); a
// request it cannot redirect is answered 400.
func (c *Config) AlwaysAnswers() bool { return true }
