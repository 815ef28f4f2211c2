// Package respond implements the "respond" filter kind: a fixed response (status, headers and
// body) for maintenance pages, health endpoints and robots.txt, without an upstream.
package respond

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sluice-gateway/sluice/engine"
)

// MaxBody bounds body and body_file: the body is held in memory and copied into every response.
const MaxBody = 1 << 20

// Config is the body of a `filter "respond"` block.
type Config struct {
	Status      int               `hcl:"status,optional" json:"status"`
	Body        string            `hcl:"body,optional" json:"body,omitempty"`
	BodyFile    string            `hcl:"body_file,optional" json:"body_file,omitempty"`
	ContentType string            `hcl:"content_type,optional" json:"content_type"`
	Headers     map[string]string `hcl:"headers,optional" json:"headers,omitempty"`
}

// SetDefaults: 200, text/plain.
func (c *Config) SetDefaults() {
	c.Status = 200
	c.ContentType = "text/plain; charset=utf-8"
}

// Validate checks the status, the body's source and size, and the headers.
func (c *Config) Validate() error {
	var errs []error
	if c.Status < 200 || c.Status > 599 {
		errs = append(errs, engine.FieldErr("status", "%d is not a final HTTP status (200–599)", c.Status))
	}
	if c.Body != "" && c.BodyFile != "" {
		errs = append(errs, engine.FieldErr("body_file", "set either body or body_file, not both"))
	}
	if len(c.Body) > MaxBody {
		errs = append(errs, engine.FieldErr("body", "is %d bytes; at most %d", len(c.Body), MaxBody))
	}
	if !validValue(c.ContentType) {
		errs = append(errs, engine.FieldErr("content_type", "must not contain control characters"))
	}
	for k, v := range c.Headers {
		if !validName(k) {
			errs = append(errs, engine.FieldErr("headers", "invalid header name %q", k))
		}
		if !validValue(v) {
			errs = append(errs, engine.FieldErr("headers", "header %q: value must not contain control characters", k))
		}
		switch strings.ToLower(k) {
		case "content-type":
			errs = append(errs, engine.FieldErr("headers", "set Content-Type with content_type"))
		case "content-length", "transfer-encoding", "connection":
			errs = append(errs, engine.FieldErr("headers", "%s is the gateway's to set", k))
		}
	}
	if (c.Status == 204 || c.Status == 304) && (c.Body != "" || c.BodyFile != "") {
		errs = append(errs, engine.FieldErr("status", "a %d response has no body", c.Status))
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("():,;<>@[]\"/?={}\\", b) >= 0 {
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// Register declares the "respond" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "respond", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		body := []byte(cfg.Body)
		if cfg.BodyFile != "" {
			b, err := env.ReadFile(cfg.BodyFile)
			if err != nil {
				return nil, fmt.Errorf("body_file: %w", err)
			}
			if len(b) > MaxBody {
				return nil, fmt.Errorf("body_file %s is %d bytes; at most %d", cfg.BodyFile, len(b), MaxBody)
			}
			body = b
		}
		return New(cfg, body), nil
	})
}

type kv struct{ k, v []byte }

// Filter answers with the fixed response. It allocates nothing per request.
type Filter struct {
	status      int
	contentType []byte
	body        []byte
	headers     []kv
}

// New builds the filter; body is the response body (cfg.Body, or body_file's content).
func New(cfg *Config, body []byte) *Filter {
	f := &Filter{status: cfg.Status, contentType: []byte(cfg.ContentType), body: body}
	keys := make([]string, 0, len(cfg.Headers))
	for k := range cfg.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f.headers = append(f.headers, kv{[]byte(k), []byte(cfg.Headers[k])})
	}
	return f
}

// OnRequest writes the response.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	r := c.Response
	r.Reset()
	r.SetStatusCode(f.status)
	if f.status == 204 || f.status == 304 {
		r.SkipBody = true
	} else {
		r.Header.SetContentTypeBytes(f.contentType)
		// A copy into the response's own (pooled) buffer: a later response phase may change
		// the body in place, which must never reach the shared original.
		r.SetBody(f.body)
	}
	for _, h := range f.headers {
		r.Header.SetBytesKV(h.k, h.v)
	}
	return engine.Respond
}

// OnResponse does nothing: the response is the filter's own.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}

// AlwaysAnswers: a pipeline ending in respond needs no balancer (engine.AlwaysAnswers).
func (c *Config) AlwaysAnswers() bool { return true }
