// Package keyauth implements the "key_auth" filter kind: API keys from a request header or a query
// parameter, checked against SHA-256 hashes (from a file or the configuration, where env() can
// supply them), each mapped to a consumer. A known key sets engine.ConsumerKey for rate_limit
// (key = "consumer"), authorize (consumers) and otel_log; the credential is removed from the
// request before anything after the filter, the upstream included, sees it. A missing or unknown
// key gets 401 with a WWW-Authenticate challenge.
package keyauth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/filters/internal/delheader"
	"github.com/valyala/fasthttp"
)

var refusals = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_key_auth_refused_total",
	Help: "Requests the key_auth filter refused, by pipeline and reason (missing, unknown, ambiguous).",
}, []string{"pipeline", "reason"})

// Config is the body of a `filter "key_auth"` block.
type Config struct {
	// Header carries the key; "" reads no header.
	Header string `hcl:"header,optional" json:"header"`
	// Query names a query parameter carrying the key; "" (default) reads none.
	Query string `hcl:"query,optional" json:"query,omitempty"`
	// KeysFile has one "CONSUMER HASH" a line ('#' starts a comment), relative to the config file.
	KeysFile string `hcl:"keys_file,optional" json:"keys_file,omitempty"`
	// Keys are further keys, one block each.
	Keys []Key `hcl:"key,block" json:"keys,omitempty"`
}

// Key is one `key { … }` block.
type Key struct {
	Consumer string `hcl:"consumer" json:"consumer"`
	// Hash is the key's SHA-256, in hex, optionally after "sha256:".
	Hash string `hcl:"key_hash" json:"key_hash" sluice:"secret"`
}

// SetDefaults: the header most APIs use.
func (c *Config) SetDefaults() { c.Header = "X-API-Key" }

// Validate checks a key block.
func (k *Key) Validate() error {
	var errs []error
	if err := checkConsumer(k.Consumer); err != nil {
		errs = append(errs, &engine.FieldError{Field: "consumer", Err: err})
	}
	if _, err := parseHash(k.Hash); err != nil {
		errs = append(errs, &engine.FieldError{Field: "key_hash", Err: err})
	}
	return errors.Join(errs...)
}

// Validate checks the block.
func (c *Config) Validate() error {
	var errs []error
	if c.Header == "" && c.Query == "" {
		errs = append(errs, engine.FieldErr("header", "set header or query (or both): where the key comes from"))
	}
	if c.Header != "" && !token(c.Header) {
		errs = append(errs, engine.FieldErr("header", "invalid header name %q", c.Header))
	}
	if c.Query != "" && !queryName(c.Query) {
		errs = append(errs, engine.FieldErr("query", "invalid query parameter name %q: use letters, digits, '-', '_', '.'", c.Query))
	}
	if c.KeysFile == "" && len(c.Keys) == 0 {
		errs = append(errs, engine.FieldErr("keys_file", "name a keys file or add key blocks"))
	}
	seen := map[[32]byte]string{}
	for _, k := range c.Keys {
		h, err := parseHash(k.Hash)
		if err != nil {
			continue // reported by Key.Validate
		}
		if other, ok := seen[h]; ok && other != k.Consumer {
			errs = append(errs, engine.FieldErr("key", "one key hash is given to two consumers (%q and %q)", other, k.Consumer))
		}
		seen[h] = k.Consumer
	}
	return errors.Join(errs...)
}

func checkConsumer(s string) error {
	if s == "" || len(s) > 128 {
		return errors.New("a consumer name has 1 to 128 characters")
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("-_.@:", b) >= 0) {
			return fmt.Errorf("invalid consumer name %q: use letters, digits, '-', '_', '.', '@', ':'", s)
		}
	}
	return nil
}

// parseHash reads 64 hex digits, optionally after "sha256:". Its errors never repeat the value:
// what was written there may be a key by mistake.
func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	s = strings.TrimPrefix(strings.TrimSpace(s), "sha256:")
	if len(s) != 64 {
		return h, fmt.Errorf("want a SHA-256 hash of the key: 64 hex digits, optionally after \"sha256:\" (got %d characters; never the key itself)", len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, errors.New("want a SHA-256 hash of the key: 64 hex digits (got a character that is not a hex digit)")
	}
	return h, nil
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

func queryName(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return false
		}
	}
	return s != ""
}

// Register declares the "key_auth" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "key_auth", build)
}

// maxFileBytes bounds a keys file.
const maxFileBytes = 16 << 20

func build(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
	// The name as fasthttp stores parsed headers (X-API-Key → X-Api-Key): looked up and removed
	// with normalising off, it is not case-folded again on every request.
	canon := fasthttp.AppendNormalizedHeaderKey(nil, cfg.Header)
	f := &Filter{
		header:     canon,
		headerName: string(canon),
		del:        delheader.New(cfg.Header),
		query:      []byte(cfg.Query),
		keys:       map[[32]byte]*entry{},
	}
	f.bufs.New = func() any { b := make([]byte, 0, 256); return &b }
	consumers := map[string]*engine.Consumer{}
	add := func(name string, h [32]byte, where string) error {
		if e, ok := f.keys[h]; ok && e.consumer.ID != name {
			return fmt.Errorf("%s: one key hash is given to two consumers (%q and %q)", where, e.consumer.ID, name)
		}
		c, ok := consumers[name]
		if !ok {
			// One value per consumer, shared by its keys: setting it on a request allocates nothing.
			c = &engine.Consumer{ID: name, Method: "key_auth"}
			consumers[name] = c
		}
		f.keys[h] = &entry{hash: h, consumer: c}
		return nil
	}
	for i, k := range cfg.Keys {
		h, err := parseHash(k.Hash)
		if err != nil {
			return nil, engine.FieldErr("key", "key block %d: %v", i+1, err)
		}
		if err := add(k.Consumer, h, fmt.Sprintf("key block %d", i+1)); err != nil {
			return nil, &engine.FieldError{Field: "key", Err: err}
		}
	}
	if cfg.KeysFile != "" {
		b, err := env.ReadFile(cfg.KeysFile)
		if err != nil {
			return nil, &engine.FieldError{Field: "keys_file", Err: fmt.Errorf("reading keys: %w", err)}
		}
		if len(b) > maxFileBytes {
			return nil, engine.FieldErr("keys_file", "%s is larger than %d MiB", cfg.KeysFile, maxFileBytes>>20)
		}
		if err := readKeys(b, func(name string, h [32]byte, line int) error {
			return add(name, h, fmt.Sprintf("line %d", line))
		}); err != nil {
			return nil, &engine.FieldError{Field: "keys_file", Err: fmt.Errorf("%s: %w", cfg.KeysFile, err)}
		}
	}
	if len(f.keys) == 0 {
		return nil, engine.FieldErr("keys_file", "%s holds no key: every request would be refused", cfg.KeysFile)
	}
	realm := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, env.Pipeline)
	if realm == "" {
		realm = "sluice"
	}
	f.challenge = fmt.Appendf(nil, `APIKey realm="%s"`, realm)
	f.mMissing = refusals.WithLabelValues(env.Pipeline, "missing")
	f.mUnknown = refusals.WithLabelValues(env.Pipeline, "unknown")
	f.mAmbiguous = refusals.WithLabelValues(env.Pipeline, "ambiguous")
	if cfg.Header != "" {
		// A client's "X_API_Key" is dropped on arrival: a CGI-style upstream would read it as the
		// credential header this filter removes.
		env.SetsRequestHeaders(cfg.Header)
	}
	return f, nil
}

// readKeys calls fn for each "CONSUMER HASH" line; '#' starts a comment, blank lines are skipped.
// Errors name the line, never its content (it may hold a key pasted by mistake).
func readKeys(b []byte, fn func(name string, h [32]byte, line int) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return fmt.Errorf("line %d: want \"CONSUMER SHA256-HEX\" (%d fields)", n, len(fields))
		}
		if err := checkConsumer(fields[0]); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		h, err := parseHash(fields[1])
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if err := fn(fields[0], h, n); err != nil {
			return err
		}
	}
	return sc.Err()
}

type entry struct {
	hash     [32]byte
	consumer *engine.Consumer
}

// Filter checks API keys. It allocates nothing per request.
type Filter struct {
	header     []byte
	headerName string
	del        delheader.Name // header's
	query      []byte
	keys       map[[32]byte]*entry
	challenge  []byte
	bufs       sync.Pool // request-target buffers for removing the query parameter

	mMissing, mUnknown, mAmbiguous prometheus.Counter
}

// maxKeyLen bounds the work an unknown key costs.
const maxKeyLen = 512

var (
	hdrWWWAuthenticate = []byte("WWW-Authenticate")
	errMissing         = errors.New("key_auth: no API key")
	errAmbiguous       = errors.New("key_auth: more than one API key")
	errUnknown         = errors.New("key_auth: unknown API key")
)

// OnRequest looks the key up, removes it from the request and sets the consumer, or answers 401.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	var key []byte
	n := 0
	if len(f.header) > 0 {
		// PeekAll has no variant taking a normalised name: normalising is turned off for the
		// call (f.headerName is already normalised) and put back as it was.
		h := &c.Request.Header
		wasOff := h.DisableNormalizing()
		vals := h.PeekAll(f.headerName)
		if !wasOff {
			h.EnableNormalizing()
		}
		n = len(vals)
		if n == 1 {
			key = vals[0]
		}
	}
	if len(f.query) > 0 {
		// Declared here, not above: zeroing 512 bytes is work a header-only filter skips.
		var qbuf [maxKeyLen]byte
		if qn, qkey := f.fromQuery(c, qbuf[:0]); qn > 0 {
			if n == 0 && qn == 1 {
				key = qkey
			}
			n += qn
		}
	}
	switch {
	case n == 0:
		f.mMissing.Inc()
		return f.refuse(c, errMissing)
	case n > 1:
		// Two credentials (two headers, or header and query): which one would the upstream or a
		// log believe? Refuse rather than guess.
		f.mAmbiguous.Inc()
		return f.refuse(c, errAmbiguous)
	case len(key) == 0 || len(key) > maxKeyLen:
		f.mUnknown.Inc()
		return f.refuse(c, errUnknown)
	}
	sum := sha256.Sum256(key)
	// The map is keyed by the SHA-256 of the key, so its lookup time depends on the hash of a
	// hash: a client cannot steer it towards a stored key without a preimage. The final
	// comparison is constant-time all the same (SECURITY.md).
	e, ok := f.keys[sum]
	if !ok || subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 {
		f.mUnknown.Inc()
		return f.refuse(c, errUnknown)
	}
	f.strip(c)
	engine.ConsumerKey.Set(c, e.consumer)
	return engine.Continue
}

func (f *Filter) refuse(c *engine.Ctx, err error) engine.Verdict {
	// A refused credential is removed too: the access log's request_headers and any response
	// phase must not see a forged key or a real one sent alongside another.
	f.strip(c)
	c.AddFlags(engine.FlagUnauthorized)
	c.Fail(401, err)
	c.Response.Header.SetBytesKV(hdrWWWAuthenticate, f.challenge)
	return engine.Respond
}

// strip removes the credential header and query parameter (every occurrence) from the request.
func (f *Filter) strip(c *engine.Ctx) {
	if len(f.header) > 0 {
		// As DelBytes would, without working on the name again (filters/internal/delheader).
		f.del.Del(&c.Request.Header)
	}
	if len(f.query) == 0 {
		return
	}
	raw := c.Request.Header.RequestURI()
	q := bytes.IndexByte(raw, '?')
	if q < 0 {
		return
	}
	bp := f.bufs.Get().(*[]byte)
	b := append((*bp)[:0], raw[:q]...)
	kept := 0
	for rest := raw[q+1:]; len(rest) > 0; {
		var p []byte
		if i := bytes.IndexByte(rest, '&'); i >= 0 {
			p, rest = rest[:i], rest[i+1:]
		} else {
			p, rest = rest, nil
		}
		name, _, _ := bytes.Cut(p, []byte("="))
		if f.isName(name) {
			continue
		}
		if kept == 0 {
			b = append(b, '?')
		} else {
			b = append(b, '&')
		}
		b = append(b, p...)
		kept++
	}
	c.Request.SetRequestURIBytes(b)
	*bp = b
	f.bufs.Put(bp)
}

// fromQuery counts the query parameters named f.query and returns the first one's value,
// percent-decoded into buf.
func (f *Filter) fromQuery(c *engine.Ctx, buf []byte) (int, []byte) {
	_, query := engine.RawPath(c.Request)
	n := 0
	var val []byte
	for len(query) > 0 {
		var p []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			p, query = query[:i], query[i+1:]
		} else {
			p, query = query, nil
		}
		name, v, _ := bytes.Cut(p, []byte("="))
		if !f.isName(name) {
			continue
		}
		n++
		if n == 1 {
			var ok bool
			if val, ok = unescape(buf, v); !ok {
				val = nil // an invalid escape or an over-long key: refused as unknown
			}
		}
	}
	return n, val
}

// isName reports whether a raw query parameter name is f.query once percent-decoded, so that
// "api%5Fkey" is recognised (and removed) as "api_key".
func (f *Filter) isName(raw []byte) bool {
	var buf [64]byte
	name, ok := unescape(buf[:0], raw)
	return ok && string(name) == string(f.query)
}

// unescape percent-decodes s into buf (within its capacity); ok is false on an invalid escape
// or when s does not fit.
func unescape(buf, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '%' {
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return nil, false
			}
			ch = byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		}
		if len(buf) == cap(buf) {
			return nil, false
		}
		buf = append(buf, ch)
	}
	return buf, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// OnResponse does nothing.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}
