// Package cors implements the "cors" filter kind: the CORS protocol (Fetch standard) at the
// gateway. Preflights (OPTIONS with Origin and Access-Control-Request-Method) are answered by the
// filter and never reach the upstream; actual requests from an allowed origin get the
// Access-Control-Allow-Origin, -Credentials and -Expose-Headers fields on their response.
package cors

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
)

// Config is the body of a `filter "cors"` block.
type Config struct {
	// AllowOrigins lists the origins allowed: exact ("https://app.example.com"), a pattern whose
	// first host label is "*" ("https://*.example.com": exactly one label), "null" (only when
	// listed), or "*" alone (any origin but null, without credentials).
	AllowOrigins []string `hcl:"allow_origins" json:"allow_origins"`
	// AllowMethods a preflight may ask for (GET, HEAD and POST are always allowed, as browsers
	// never ask for them).
	AllowMethods []string `hcl:"allow_methods,optional" json:"allow_methods"`
	// AllowHeaders a preflight may ask for (case-insensitive); ["*"] allows any.
	AllowHeaders []string `hcl:"allow_headers,optional" json:"allow_headers,omitempty"`
	// ExposeHeaders are response headers scripts may read beyond the safelisted ones.
	ExposeHeaders []string `hcl:"expose_headers,optional" json:"expose_headers,omitempty"`
	// AllowCredentials lets cookies and Authorization go with cross-origin requests.
	AllowCredentials bool `hcl:"allow_credentials,optional" json:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight's answer.
	MaxAge engine.Duration `hcl:"max_age,optional" json:"max_age"`
	// AllowPrivateNetwork answers Private Network Access preflights
	// (Access-Control-Request-Private-Network: true) with Access-Control-Allow-Private-Network.
	AllowPrivateNetwork bool `hcl:"allow_private_network,optional" json:"allow_private_network"`
}

// SetDefaults: the methods a form can send plus the usual REST ones, a 10-minute preflight cache.
func (c *Config) SetDefaults() {
	c.AllowMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	c.MaxAge = engine.Duration(10 * time.Minute)
}

// maxMaxAge is what browsers cap a preflight cache at anyway (Firefox: 24 h).
const maxMaxAge = 24 * time.Hour

// Validate checks the origins, methods, header names and max_age.
func (c *Config) Validate() error {
	var errs []error
	if len(c.AllowOrigins) == 0 {
		errs = append(errs, engine.FieldErr("allow_origins", "list at least one origin, such as \"https://app.example.com\""))
	}
	for _, o := range c.AllowOrigins {
		if _, err := parseOrigin(o); err != nil {
			errs = append(errs, &engine.FieldError{Field: "allow_origins", Err: err})
		}
		if o == "*" && len(c.AllowOrigins) > 1 {
			errs = append(errs, engine.FieldErr("allow_origins", "\"*\" allows every origin: list it alone"))
		}
		if o == "*" && c.AllowCredentials {
			errs = append(errs, engine.FieldErr("allow_origins", "\"*\" cannot go with allow_credentials = true: browsers refuse it, and reflecting any origin with credentials lets every site act as the user; list the origins"))
		}
	}
	for _, m := range c.AllowMethods {
		if !token(m) || strings.ToUpper(m) != m {
			errs = append(errs, engine.FieldErr("allow_methods", "invalid method %q: use upper-case tokens such as \"DELETE\"", m))
		}
	}
	for _, h := range c.AllowHeaders {
		if h == "*" && len(c.AllowHeaders) > 1 {
			errs = append(errs, engine.FieldErr("allow_headers", "\"*\" allows every header: list it alone"))
		} else if h != "*" && !token(h) {
			errs = append(errs, engine.FieldErr("allow_headers", "invalid header name %q", h))
		}
	}
	for _, h := range c.ExposeHeaders {
		if !token(h) {
			errs = append(errs, engine.FieldErr("expose_headers", "invalid header name %q", h))
		}
	}
	if c.MaxAge < 0 || c.MaxAge.D() > maxMaxAge {
		errs = append(errs, engine.FieldErr("max_age", "must be between 0 and 24h (browsers cap it: Chromium at 2h)"))
	}
	return errors.Join(errs...)
}

// origin is one allowed origin: exact, or prefix + one DNS label + suffix.
type origin struct {
	exact    string
	wildcard bool
	prefix   string // "https://"
	suffix   string // ".example.com" or ".example.com:8443"
}

// parseOrigin checks an allow_origins entry: "null", or scheme "://" host [":" port] where the
// host's first label may be "*".
func parseOrigin(s string) (origin, error) {
	if s == "*" || s == "null" {
		return origin{exact: s}, nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || !token(scheme) {
		return origin{}, fmt.Errorf("%q is not an origin: write scheme://host[:port], such as \"https://app.example.com\"", s)
	}
	if strings.ContainsAny(rest, "/?#@ \\") || rest == "" {
		return origin{}, fmt.Errorf("%q is not an origin: no path, query, user or spaces (an origin is scheme://host[:port])", s)
	}
	if s != strings.ToLower(s) {
		return origin{}, fmt.Errorf("%q: write origins in lower case, as browsers send them", s)
	}
	if strings.Count(s, "*") > 1 || strings.Contains(s, "*") && !strings.HasPrefix(rest, "*.") {
		return origin{}, fmt.Errorf("%q: \"*\" may only stand for the first label of the host (\"https://*.example.com\")", s)
	}
	if strings.HasPrefix(rest, "*.") {
		suffix := rest[1:]
		host, _, _ := strings.Cut(suffix[1:], ":")
		if !strings.Contains(host, ".") {
			return origin{}, fmt.Errorf("%q: a pattern must keep at least two labels after \"*\" (not a whole top-level domain)", s)
		}
		return origin{wildcard: true, prefix: scheme + "://", suffix: suffix}, nil
	}
	return origin{exact: s}, nil
}

// matches reports whether the request's Origin is this one. A pattern's "*" is exactly one
// non-empty DNS label (letters, digits, '-'), so "https://*.example.com" matches
// "https://app.example.com" but not "https://a.b.example.com", "https://example.com" or
// "https://app.example.com.evil.net".
func (o *origin) matches(v []byte) bool {
	if !o.wildcard {
		return string(v) == o.exact
	}
	if len(v) <= len(o.prefix)+len(o.suffix) || string(v[:len(o.prefix)]) != o.prefix ||
		string(v[len(v)-len(o.suffix):]) != o.suffix {
		return false
	}
	for _, b := range v[len(o.prefix) : len(v)-len(o.suffix)] {
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", b) >= 0 {
			return false
		}
	}
	return true
}

// Register declares the "cors" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "cors", func(cfg *Config, _ *engine.BuildEnv) (engine.Filter, error) {
		return New(cfg), nil
	})
}

// Filter applies the policy. It allocates nothing per request.
type Filter struct {
	origins     []origin
	any         bool // allow_origins = ["*"]: any origin but null
	credentials bool
	methods     [][]byte
	headers     []string // lower case
	anyHeader   bool
	pna         bool

	allowMethods  []byte // Access-Control-Allow-Methods value
	allowHeaders  []byte // Access-Control-Allow-Headers value (unless anyHeader)
	exposeHeaders []byte
	maxAge        []byte
}

// New builds the filter from a validated config.
func New(cfg *Config) *Filter {
	f := &Filter{credentials: cfg.AllowCredentials, pna: cfg.AllowPrivateNetwork}
	for _, s := range cfg.AllowOrigins {
		if s == "*" {
			f.any = true
			continue
		}
		o, _ := parseOrigin(s)
		f.origins = append(f.origins, o)
	}
	for _, m := range cfg.AllowMethods {
		f.methods = append(f.methods, []byte(m))
	}
	for _, h := range cfg.AllowHeaders {
		if h == "*" {
			f.anyHeader = true
			continue
		}
		f.headers = append(f.headers, strings.ToLower(h))
	}
	f.allowMethods = []byte(strings.Join(cfg.AllowMethods, ", "))
	f.allowHeaders = []byte(strings.Join(cfg.AllowHeaders, ", "))
	f.exposeHeaders = []byte(strings.Join(cfg.ExposeHeaders, ", "))
	f.maxAge = strconv.AppendInt(nil, int64(cfg.MaxAge.D()/time.Second), 10)
	return f
}

var (
	nameOrigin     = engine.NewHeaderName("Origin")
	hdrAllowOrigin = []byte("Access-Control-Allow-Origin")
	hdrAllowCreds  = []byte("Access-Control-Allow-Credentials")
	hdrAllowMeth   = []byte("Access-Control-Allow-Methods")
	hdrAllowHdrs   = []byte("Access-Control-Allow-Headers")
	hdrExpose      = []byte("Access-Control-Expose-Headers")
	hdrMaxAge      = []byte("Access-Control-Max-Age")
	hdrAllowPNA    = []byte("Access-Control-Allow-Private-Network")
	hdrVary        = []byte("Vary")
	valOrigin      = []byte("Origin")
	valPreflight   = []byte("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	valTrue        = []byte("true")
	valStar        = []byte("*")
)

// allowed reports whether the Origin value is allowed.
func (f *Filter) allowed(o []byte) bool {
	if f.any {
		// "*" never covers the opaque origin of sandboxed frames and file: pages.
		return string(o) != "null"
	}
	for i := range f.origins {
		if f.origins[i].matches(o) {
			return true
		}
	}
	return false
}

// preflightFields are the request fields a preflight is answered from.
type preflightFields struct {
	origin, method, headers, pna []byte
}

// preflight reads a preflight's fields in one pass over the request's headers (a lookup by name
// would canonicalise the name each time); ok: the request is OPTIONS with Origin and
// Access-Control-Request-Method. The header names are compared in fasthttp's canonical form,
// which is how it stores them.
func preflight(c *engine.Ctx) (p preflightFields, ok bool) {
	h := &c.Request.Header
	if string(h.Method()) != "OPTIONS" {
		return p, false
	}
	for k, v := range h.All() {
		switch string(k) {
		case "Origin":
			if p.origin == nil {
				p.origin = v
			}
		case "Access-Control-Request-Method":
			if p.method == nil {
				p.method = v
			}
		case "Access-Control-Request-Headers":
			if p.headers == nil {
				p.headers = v
			}
		case "Access-Control-Request-Private-Network":
			p.pna = v
		}
	}
	return p, len(p.origin) > 0 && len(p.method) > 0
}

// OnRequest answers a preflight; every other request passes.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	p, ok := preflight(c)
	if !ok {
		return engine.Continue
	}
	o := p.origin
	resp := c.Response
	resp.Reset()
	if !f.allowed(o) || !f.methodAllowed(p.method) || !f.headersAllowed(p.headers) {
		// Refused: no Access-Control-Allow-Origin, so the browser fails the preflight and never
		// sends the request; 403 makes it plain in the developer tools.
		resp.SetStatusCode(403)
		resp.Header.SetCanonical(hdrVary, valPreflight)
		return engine.Respond
	}
	resp.SetStatusCode(204)
	// "*" only for allow_origins = ["*"], which cannot go with credentials; otherwise the
	// request's exact origin.
	if f.any {
		resp.Header.SetCanonical(hdrAllowOrigin, valStar)
	} else {
		resp.Header.SetCanonical(hdrAllowOrigin, o)
	}
	if f.credentials {
		resp.Header.SetCanonical(hdrAllowCreds, valTrue)
	}
	resp.Header.SetCanonical(hdrVary, valPreflight)
	resp.Header.SetCanonical(hdrAllowMeth, f.allowMethods)
	if f.anyHeader {
		// "*" is no wildcard in a credentialed answer: name what was asked for instead. fasthttp
		// parsed the value as one header line, so it holds no line break.
		if len(p.headers) > 0 {
			resp.Header.SetCanonical(hdrAllowHdrs, p.headers)
		}
	} else if len(f.allowHeaders) > 0 {
		resp.Header.SetCanonical(hdrAllowHdrs, f.allowHeaders)
	}
	resp.Header.SetCanonical(hdrMaxAge, f.maxAge)
	if f.pna && string(p.pna) == "true" {
		resp.Header.SetCanonical(hdrAllowPNA, valTrue)
	}
	return engine.Respond
}

// methodAllowed: the CORS-safelisted methods need no listing (browsers never ask for them).
func (f *Filter) methodAllowed(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "POST":
		return true
	}
	for _, a := range f.methods {
		if string(a) == string(m) {
			return true
		}
	}
	return false
}

// headersAllowed checks each name of the comma-separated Access-Control-Request-Headers list.
func (f *Filter) headersAllowed(list []byte) bool {
	if f.anyHeader {
		for _, b := range list {
			// Echoed back: only a plain token list may be.
			if b < ' ' && b != '\t' || b >= 0x7f {
				return false
			}
		}
		return true
	}
	for len(list) > 0 {
		var name []byte
		if i := indexByte(list, ','); i >= 0 {
			name, list = list[:i], list[i+1:]
		} else {
			name, list = list, nil
		}
		name = trim(name)
		if len(name) == 0 {
			continue
		}
		ok := false
		for _, a := range f.headers {
			if ascii.EqualFoldLower(name, a) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// OnResponse adds the CORS fields to the response of an actual request from an allowed origin.
// The gateway's policy replaces whatever CORS fields the upstream sent.
func (f *Filter) OnResponse(c *engine.Ctx) {
	if string(c.Request.Header.Method()) == "OPTIONS" {
		if _, ok := preflight(c); ok {
			return // answered in the request phase
		}
	}
	o := nameOrigin.Peek(&c.Request.Header)
	rh := &c.Response.Header
	// The answer depends on the Origin: a cache must not give one origin's answer to another (nor
	// a same-origin answer, without the fields, to a cross-origin request). Even with "*", whose
	// answer the null origin must not get.
	rh.AddBytesKV(hdrVary, valOrigin)
	if len(o) == 0 || !f.allowed(o) {
		rh.DelBytes(hdrAllowOrigin)
		rh.DelBytes(hdrAllowCreds)
		rh.DelBytes(hdrExpose)
		return
	}
	if f.any {
		rh.SetCanonical(hdrAllowOrigin, valStar)
	} else {
		rh.SetCanonical(hdrAllowOrigin, o)
	}
	if f.credentials {
		rh.SetCanonical(hdrAllowCreds, valTrue)
	} else {
		rh.DelBytes(hdrAllowCreds)
	}
	if len(f.exposeHeaders) > 0 {
		rh.SetCanonical(hdrExpose, f.exposeHeaders)
	} else {
		rh.DelBytes(hdrExpose)
	}
}
