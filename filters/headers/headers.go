// Package headers implements the "headers" filter kind: set, add and remove request headers on
// the way in and response headers on the way out.
package headers

import (
	"errors"
	"sort"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// Config is the body of a `filter "headers"` block.
type Config struct {
	RequestSet     map[string]string `hcl:"request_set,optional" json:"request_set,omitempty"`
	RequestAdd     map[string]string `hcl:"request_add,optional" json:"request_add,omitempty"`
	RequestRemove  []string          `hcl:"request_remove,optional" json:"request_remove,omitempty"`
	ResponseSet    map[string]string `hcl:"response_set,optional" json:"response_set,omitempty"`
	ResponseAdd    map[string]string `hcl:"response_add,optional" json:"response_add,omitempty"`
	ResponseRemove []string          `hcl:"response_remove,optional" json:"response_remove,omitempty"`
}

// Validate checks that every name is an HTTP token and no value holds a line break.
func (c *Config) Validate() error {
	var errs []error
	checkMap := func(field string, m map[string]string) {
		for k, v := range m {
			if !validName(k) {
				errs = append(errs, engine.FieldErr(field, "invalid header name %q", k))
			}
			if !validValue(v) {
				errs = append(errs, engine.FieldErr(field, "header %q: value must not contain control characters", k))
			}
		}
	}
	checkList := func(field string, l []string) {
		for _, k := range l {
			if !validName(k) {
				errs = append(errs, engine.FieldErr(field, "invalid header name %q", k))
			}
		}
	}
	checkMap("request_set", c.RequestSet)
	checkMap("request_add", c.RequestAdd)
	checkList("request_remove", c.RequestRemove)
	checkMap("response_set", c.ResponseSet)
	checkMap("response_add", c.ResponseAdd)
	checkList("response_remove", c.ResponseRemove)
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || b == ':' || b == '(' || b == ')' || b == ',' || b == ';' ||
			b == '<' || b == '>' || b == '@' || b == '[' || b == ']' || b == '"' || b == '/' ||
			b == '?' || b == '=' || b == '{' || b == '}' || b == '\\' {
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

// Register declares the "headers" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "headers", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		// The server removes a client's header spelling one of these with '_' for '-'.
		for k := range cfg.RequestSet {
			env.SetsRequestHeaders(k)
		}
		for k := range cfg.RequestAdd {
			env.SetsRequestHeaders(k)
		}
		return New(cfg), nil
	})
}

type kv struct{ k, v []byte }

// Filter applies a headers config. It allocates nothing per request.
type Filter struct {
	reqRemove, respRemove [][]byte
	reqSet, reqAdd        []kv
	respSet, respAdd      []kv
}

// New builds the filter; map entries are applied in sorted order so results are deterministic.
func New(cfg *Config) *Filter {
	return &Filter{
		reqRemove:  bytesList(cfg.RequestRemove),
		respRemove: bytesList(cfg.ResponseRemove),
		reqSet:     pairs(cfg.RequestSet),
		reqAdd:     pairs(cfg.RequestAdd),
		respSet:    pairs(cfg.ResponseSet),
		respAdd:    pairs(cfg.ResponseAdd),
	}
}

func bytesList(l []string) [][]byte {
	out := make([][]byte, len(l))
	for i, s := range l {
		out[i] = []byte(s)
	}
	return out
}

func pairs(m map[string]string) []kv {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]kv, len(keys))
	for i, k := range keys {
		out[i] = kv{[]byte(k), []byte(m[k])}
	}
	return out
}

// OnRequest removes, then sets, then adds request headers.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	apply(&c.Request.Header, f.reqRemove, f.reqSet, f.reqAdd)
	return engine.Continue
}

// OnResponse removes, then sets, then adds response headers, local replies included.
func (f *Filter) OnResponse(c *engine.Ctx) {
	h := &c.Response.Header
	for _, k := range f.respRemove {
		h.DelBytes(k)
	}
	for _, p := range f.respSet {
		h.SetBytesKV(p.k, p.v)
	}
	for _, p := range f.respAdd {
		h.AddBytesKV(p.k, p.v)
	}
}

func apply(h *fasthttp.RequestHeader, remove [][]byte, set, add []kv) {
	for _, k := range remove {
		h.DelBytes(k)
	}
	for _, p := range set {
		h.SetBytesKV(p.k, p.v)
	}
	for _, p := range add {
		h.AddBytesKV(p.k, p.v)
	}
}
