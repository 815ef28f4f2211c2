package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
)

// Spec is a decoded configuration, ready to build: the hcl package produces it.
type Spec struct {
	// Dir is the folder of the main config file; relative paths resolve against it.
	Dir    string
	Server ServerConfig
	// Listeners are the listener blocks; none: the server block's listen and tls make one
	// (EffectiveListeners).
	Listeners []ListenerConfig
	Admin     AdminConfig
	Telemetry TelemetryConfig
	Redis     map[string]*RedisConfig
	Upstreams []UpstreamSpec
	Pipelines []PipelineSpec
}

// UpstreamSpec is a decoded `upstream "NAME"` block.
type UpstreamSpec struct {
	Name   string
	Config any // the registered upstream config struct
}

// PipelineSpec is a decoded `pipeline "NAME"` block.
type PipelineSpec struct {
	Name        string
	Match       MatchConfig
	StripPrefix string
	Filters     []FilterSpec
	Upstream    string // the balancer's upstream (with a split: the first's)
	// Balancer is the balancer block when it chooses between upstreams per request (split,
	// route_header, route_cookie: traffic.go); nil: Upstream serves every request.
	Balancer *BalancerSpec
	// Route ends the pipeline in a route block instead of a balancer (route.go).
	Route *RouteConfig
	// Upgrades lists the protocols a request may switch to (Upgrade); nil: DefaultUpgrades.
	Upgrades []string
	// ForwardClientCert overrides the server's forward_client_cert for this pipeline ("": the
	// server's).
	ForwardClientCert string
	// TraceSampleRatio overrides telemetry.traces.sample_ratio for requests this pipeline serves
	// that start a trace (nil: the telemetry block's).
	TraceSampleRatio *float64
}

// FilterSpec is a decoded `filter "KIND"` block.
type FilterSpec struct {
	Kind   string
	Name   string // the config's "name" attribute, when the kind has one
	Config any    // the kind's config struct
}

// BuildError is a build failure located in the spec, so the hcl package can point at its block.
type BuildError struct {
	Server   bool   // set for the server block
	Listener string // set for a listener block (the implicit one's is the server block)
	// Field is the attribute of the server or listener block at fault, dotted
	// ("tls.certificate[1].key_file"); "" for the block.
	Field    string
	Upstream string // set for an upstream block
	Pipeline int    // index into Spec.Pipelines, or -1
	Filter   int    // index into that pipeline's filters, or -1 for the pipeline itself
	Err      error
}

func (e *BuildError) Error() string { return e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// BuildOptions tune Build.
type BuildOptions struct {
	Logger *slog.Logger
	// Validating builds everything that can be checked without starting background work.
	Validating bool
}

// Gateway is a built configuration: the router with its pipelines and the upstreams. A Server
// serves one at a time and swaps in a new one on reload.
type Gateway struct {
	Spec      *Spec
	Router    *Router
	Pipelines []*Pipeline
	Upstreams map[string]Upstream
	// Inputs lists the files the configuration read besides itself (BuildEnv.ReadFile, the
	// server's certificate and key, file() arguments): `sluice run --watch` reloads when one changes.
	Inputs []string
	// Warnings are problems that do not stop the configuration (a certificate that covers no
	// pipeline host, an expired one): `sluice validate` and reloads report them.
	Warnings []*BuildError

	observer Observer
	// certs are the TLS listeners' certificates, by listener name (listenerbuild.go); a
	// running server installs them on reload. tlsProviders plug into the TLS listeners.
	certs        map[string]*certSet
	tlsProviders []TLSProvider
	// clientAuth are the TLS listeners' client_auth policies, by listener name
	// (clientauthtable.go); a running server installs them on reload.
	clientAuth map[string]*clientAuthTable
	// headers is how the server cleans requests' headers (hopbyhop.go); requestHeaders are the
	// request headers the filters set (BuildEnv.SetsRequestHeaders).
	headers        *headerPolicy
	requestHeaders []string
	closers        []io.Closer
	inflight       atomic.Int64
	closed         atomic.Bool
}

// Build makes a Gateway from a spec. It returns every failure it finds, each located; on failure
// whatever was built is closed again.
func Build(spec *Spec, reg *Registry, opt BuildOptions) (*Gateway, []*BuildError) {
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{Spec: spec, Upstreams: map[string]Upstream{}}
	var errs []*BuildError
	env := func(pipeline, stage string, earlier []string) *BuildEnv {
		return &BuildEnv{
			Pipeline: pipeline, Stage: stage, Earlier: earlier, Dir: spec.Dir,
			Logger: log, Server: &spec.Server, Telemetry: &spec.Telemetry, Redis: spec.Redis,
			Validating: opt.Validating, closers: &g.closers, requestHeaders: &g.requestHeaders, inputs: &g.Inputs,
		}
	}

	g.tlsProviders = reg.tlsProviders
	errs = append(errs, g.buildListeners(spec, env)...)
	errs = append(errs, g.buildClientAuth(spec, log)...)

	uk := reg.Upstream()
	for _, us := range spec.Upstreams {
		if uk == nil {
			errs = append(errs, &BuildError{Upstream: us.Name, Pipeline: -1, Filter: -1, Err: errors.New("no upstream implementation is registered")})
			continue
		}
		e := env("", "upstream:"+us.Name, nil)
		e.Logger = log.With("upstream", us.Name)
		u, err := uk.Build(us.Name, us.Config, e)
		if err != nil {
			errs = append(errs, &BuildError{Upstream: us.Name, Pipeline: -1, Filter: -1, Err: err})
			continue
		}
		g.Upstreams[us.Name] = u
		if c, ok := u.(io.Closer); ok {
			g.closers = append(g.closers, c)
		}
	}

	for pi, ps := range spec.Pipelines {
		var stages []Stage
		var earlier []string
		for fi, fs := range ps.Filters {
			k, ok := reg.Filter(fs.Kind)
			if !ok {
				errs = append(errs, &BuildError{Pipeline: pi, Filter: fi, Err: fmt.Errorf("unknown filter kind %q", fs.Kind)})
				continue
			}
			st := Stage{Kind: fs.Kind, Name: fs.Name}
			e := env(ps.Name, st.Label(), append([]string(nil), earlier...))
			e.Logger = log.With("pipeline", ps.Name, "filter", st.Label())
			f, err := k.Build(fs.Config, e)
			earlier = append(earlier, fs.Kind)
			if err != nil {
				errs = append(errs, &BuildError{Pipeline: pi, Filter: fi, Err: err})
				continue
			}
			if c, ok := f.(io.Closer); ok {
				g.closers = append(g.closers, c)
			}
			st.Filter = f
			stages = append(stages, st)
		}
		var term Terminal
		up, ok := g.Upstreams[ps.Upstream]
		if ok {
			term = up
		}
		if ps.Route != nil {
			term, ok = &routeTerminal{g: g, maxHops: uint8(ps.Route.MaxHops)}, true
		} else if ps.EndsInAnswer() { // answers.go: respond, redirect
			term, ok = answeredTerminal{ps.Name}, true
		} else if ok && ps.Balancer.chooses() {
			ch, err := newChooser(ps.Name, ps.Upstream, ps.Balancer, g.Upstreams)
			if err != nil {
				if uk != nil {
					errs = append(errs, &BuildError{Pipeline: pi, Filter: -1, Err: fmt.Errorf("pipeline %q: %w", ps.Name, err)})
				}
				continue
			}
			term = ch
			g.closers = append(g.closers, ch)
		}
		if !ok {
			if uk != nil && !hasUpstream(spec, ps.Upstream) {
				errs = append(errs, &BuildError{Pipeline: pi, Filter: -1, Err: fmt.Errorf("pipeline %q: no upstream named %q", ps.Name, ps.Upstream)})
			}
			continue
		}
		p := NewPipeline(ps.Name, ps.Match, ps.StripPrefix, stages, term)
		p.Upstream = ps.Upstream
		p.Upgrades = ps.Upgrades
		p.ForwardClientCert = ps.ForwardClientCert
		p.TraceSampleRatio = ps.TraceSampleRatio
		p.Overrides = ps.Balancer.overrides()
		g.Pipelines = append(g.Pipelines, p)
	}
	if len(errs) > 0 {
		g.Close()
		return nil, errs
	}
	g.Router = NewRouter(g.Pipelines)
	g.headers = newHeaderPolicy(&spec.Server, g.requestHeaders)
	for _, p := range g.Pipelines {
		// A trusted proxy's X-Forwarded-Client-Cert survives cleaning when some pipeline may
		// forward it; the others drop it after routing (forwardClientCert).
		g.headers.keepXFCC = g.headers.keepXFCC || forwardsXFCC(p.ForwardClientCert)
	}
	return g, nil
}

func hasUpstream(spec *Spec, name string) bool {
	for _, u := range spec.Upstreams {
		if u.Name == name {
			return true
		}
	}
	return false
}

// SetObserver installs the telemetry observer for every pipeline of g (before it serves).
func (g *Gateway) SetObserver(o Observer) {
	g.observer = o
	for _, p := range g.Pipelines {
		p.observer = o
	}
}

// OnClose registers c to be closed with the gateway.
func (g *Gateway) OnClose(c io.Closer) { g.closers = append(g.closers, c) }

// InFlight is the number of requests the gateway is serving.
func (g *Gateway) InFlight() int64 { return g.inflight.Load() }

// Close releases everything the gateway built, in reverse order, once.
func (g *Gateway) Close() error { return g.CloseContext(context.Background()) }

// ContextCloser is a closer that can be told when to give up: an access-log output blocked on a
// pipe nobody reads, an exporter waiting for a collector. It reports what it lost itself.
type ContextCloser interface {
	CloseContext(ctx context.Context) error
}

// CloseContext is Close bounded by ctx (the shutdown deadline) for what implements
// ContextCloser; other closers are closed as by Close.
func (g *Gateway) CloseContext(ctx context.Context) error {
	if g.closed.Swap(true) {
		return nil
	}
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		var err error
		if cc, ok := g.closers[i].(ContextCloser); ok {
			err = cc.CloseContext(ctx)
		} else {
			err = g.closers[i].Close()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
