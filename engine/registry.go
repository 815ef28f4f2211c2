package engine

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
)

// Registry holds the filter kinds and the upstream implementation a gateway can be built from.
// filters.Builtin() returns one with every built-in kind.
type Registry struct {
	filters  map[string]*FilterKind
	upstream *UpstreamKind
	// tlsProviders plug into TLS listeners (RegisterTLS).
	tlsProviders []TLSProvider
}

// RegisterTLS adds a provider that every TLS listener of the gateways built from r attaches
// (ACME certificates, client authentication); see TLSListener.
func (r *Registry) RegisterTLS(p TLSProvider) { r.tlsProviders = append(r.tlsProviders, p) }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{filters: map[string]*FilterKind{}} }

// FilterKind is a registered filter kind: its config type and how to build a Filter from it.
type FilterKind struct {
	Kind string
	// NewConfig returns a pointer to a fresh config struct for the hcl package to decode into.
	NewConfig func() any
	// Build makes the filter from a decoded, validated config.
	Build func(cfg any, env *BuildEnv) (Filter, error)
}

// UpstreamKind builds the Terminal for an upstream block.
type UpstreamKind struct {
	NewConfig func() any
	Build     func(name string, cfg any, env *BuildEnv) (Upstream, error)
}

// Upstream is a built upstream block: the Terminal of every pipeline whose balancer names it.
// It may also implement io.Closer (stop health checks, close pools) and UpstreamStatus.
type Upstream interface {
	Terminal
}

// UpstreamStatus is implemented by upstreams that report their targets' health.
type UpstreamStatus interface {
	// Status is the JSON-encodable state of every target, for the admin API's /upstreams.
	Status() any
	// Healthy reports whether at least one target can take traffic, for /readyz.
	Healthy() bool
}

// Register declares a filter kind whose configuration decodes into C (a struct with `hcl` tags;
// see the hcl package for the supported field types). If *C has a `SetDefaults()` method it runs
// before decoding; if it has `Validate() error`, that runs after, and a *FieldError it returns
// (alone or in errors.Join) is reported at that attribute. `Warnings() error` likewise reports
// warnings (for example an explicitly unlimited setting), which do not refuse the config.
// Registering a kind twice panics.
func Register[C any](r *Registry, kind string, build func(cfg *C, env *BuildEnv) (Filter, error)) {
	if _, dup := r.filters[kind]; dup {
		panic(fmt.Sprintf("engine: filter kind %q registered twice", kind))
	}
	mustBeStruct[C](kind)
	r.filters[kind] = &FilterKind{
		Kind:      kind,
		NewConfig: func() any { return new(C) },
		Build:     func(cfg any, env *BuildEnv) (Filter, error) { return build(cfg.(*C), env) },
	}
}

// RegisterUpstream declares the implementation of `upstream` blocks (the balancer).
func RegisterUpstream[C any](r *Registry, build func(name string, cfg *C, env *BuildEnv) (Upstream, error)) {
	if r.upstream != nil {
		panic("engine: upstream implementation registered twice")
	}
	mustBeStruct[C]("upstream")
	r.upstream = &UpstreamKind{
		NewConfig: func() any { return new(C) },
		Build: func(name string, cfg any, env *BuildEnv) (Upstream, error) {
			return build(name, cfg.(*C), env)
		},
	}
}

func mustBeStruct[C any](what string) {
	var c C
	if reflect.TypeOf(c).Kind() != reflect.Struct {
		panic(fmt.Sprintf("engine: config of %s must be a struct", what))
	}
}

// Filter returns the kind registered under name.
func (r *Registry) Filter(kind string) (*FilterKind, bool) {
	k, ok := r.filters[kind]
	return k, ok
}

// Upstream returns the upstream implementation, or nil if none is registered.
func (r *Registry) Upstream() *UpstreamKind { return r.upstream }

// Kinds lists the registered filter kinds, sorted.
func (r *Registry) Kinds() []string {
	out := make([]string, 0, len(r.filters))
	for k := range r.filters {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// BuildEnv is what a filter or upstream sees of the gateway while it is being built.
type BuildEnv struct {
	// Pipeline is the name of the pipeline being built ("" for upstreams).
	Pipeline string
	// Stage labels the filter being built ("kind" or "kind:name").
	Stage string
	// Earlier lists the kinds of the filters before this one in its pipeline.
	Earlier []string
	// Dir is the folder of the config file; relative paths are resolved against it (see Path).
	Dir       string
	Logger    *slog.Logger
	Server    *ServerConfig
	Telemetry *TelemetryConfig
	Redis     map[string]*RedisConfig
	// Validating is true under `sluice validate`: check everything that can be checked (compile
	// modules, read key files) but start no background work and dial nothing.
	Validating bool
	// Closers collects resources to close when the built gateway is retired.
	closers *[]io.Closer
	// inputs collects the files ReadFile read (Gateway.Inputs).
	inputs *[]string
	// requestHeaders collects the request headers filters set (SetsRequestHeaders).
	requestHeaders *[]string
}

// SetsRequestHeaders declares request headers the filter being built sets for the upstream
// (jwt's forward_claims, headers' request_set): the server then removes a client's header that
// spells one of these names with '_' for '-', which CGI-style upstreams would read as the same.
func (e *BuildEnv) SetsRequestHeaders(names ...string) {
	if e.requestHeaders != nil {
		*e.requestHeaders = append(*e.requestHeaders, names...)
	}
}

// Path resolves p against the config file's folder.
func (e *BuildEnv) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.Dir, p)
}

// ReadFile reads a file the configuration names (resolved with Path) and records it among the
// gateway's Inputs, which `sluice run --watch` watches for changes. Read input files (modules,
// keys, certificates) with it; files the gateway writes are no inputs.
func (e *BuildEnv) ReadFile(p string) ([]byte, error) {
	p = e.Path(p)
	if e.inputs != nil {
		*e.inputs = append(*e.inputs, p) // also when missing: its appearance is a change
	}
	return os.ReadFile(p)
}

// RedisConfig returns the redis block a reference names.
func (e *BuildEnv) RedisConfig(ref RedisRef) (*RedisConfig, error) {
	rc, ok := e.Redis[string(ref)]
	if !ok {
		return nil, fmt.Errorf("no redis block named %q", string(ref))
	}
	return rc, nil
}

// OnClose registers c to be closed when the gateway being built is retired (after a reload has
// drained it, or at shutdown). Filters that implement io.Closer are closed without this.
func (e *BuildEnv) OnClose(c io.Closer) {
	if e.closers != nil {
		*e.closers = append(*e.closers, c)
	}
}

// FieldError is a validation error about one attribute of a config block; the hcl package
// reports it at that attribute's source range. Field is the hcl name, dotted for nested blocks
// ("health_check.interval").
type FieldError struct {
	Field string
	Err   error
	// Warning makes it a warning: reported (sluice validate prints it), but the config loads.
	Warning bool
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErr returns a *FieldError for field with a formatted message.
func FieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// FieldWarn returns a warning about field: a setting that is allowed but unsafe, such as an
// explicit "unlimited".
func FieldWarn(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...), Warning: true}
}

// FieldErrors flattens err (which may be an errors.Join tree) into its parts.
func FieldErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, FieldErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// AsFieldError reports whether err is a *FieldError.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
