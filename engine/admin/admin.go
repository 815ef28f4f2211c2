// Package admin serves the gateway's admin API: /healthz, /readyz, /config (secrets redacted),
// /upstreams, /metrics (Prometheus) and POST /reload, and the dashboard: its JSON API under
// /api/v1/ (dashboard.go) and its pages under /ui/ (ui.go). It binds to loopback unless told
// otherwise, and requires "Authorization: Bearer <token>" when a token is configured (or, for the
// dashboard, the session cookie its login form sets: session.go).
package admin

import (
	"encoding/json"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/engine/secret"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Reloader reloads the configuration; it returns the diagnostics text of a failed reload.
type Reloader func() (diagnostics string, err error)

// Server is the admin API.
type Server struct {
	token   atomic.Pointer[[]byte]
	current func() *engine.Gateway
	reload  Reloader
	srv     *fasthttp.Server
	metrics fasthttp.RequestHandler

	// The dashboard's state: the session HMAC key, the counters' samples, the open event
	// streams, and done, closed at Shutdown to end them.
	key      []byte
	started  time.Time
	samp     sampler
	sse      atomic.Int32
	conns    atomic.Pointer[func() int]
	done     chan struct{}
	stopOnce sync.Once
	sampling sync.Once
	// source describes where the configuration comes from (etcd: what is served, what was
	// refused), for /readyz; nil for a configuration file.
	source atomic.Pointer[func() any]
}

// SetSource adds the configuration source's state to /readyz's answer.
func (s *Server) SetSource(detail func() any) { s.source.Store(&detail) }

// New returns an admin server for the gateway current returns.
func New(cfg engine.AdminConfig, current func() *engine.Gateway, reload Reloader) *Server {
	s := &Server{current: current, reload: reload, key: newKey(), started: time.Now(), done: make(chan struct{})}
	s.SetToken(cfg.Token)
	s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(metrics.Gatherer, promhttp.HandlerOpts{}))
	s.srv = &fasthttp.Server{Handler: s.handle, Name: "sluice-admin", NoDefaultServerHeader: true, SecureErrorLogMessage: true}
	return s
}

// SetToken changes the bearer token every request needs ("" for none), e.g. on reload.
func (s *Server) SetToken(token string) {
	b := []byte(token)
	s.token.Store(&b)
}

// SetStartTime sets the process start the dashboard's uptime counts from (default: New's time).
func (s *Server) SetStartTime(t time.Time) { s.started = t }

// SetConnections gives the dashboard the count of open client connections (the server's).
func (s *Server) SetConnections(f func() int) { s.conns.Store(&f) }

// Serve serves the admin API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.sampling.Do(func() { go s.sampleLoop() }) // dashboard.go
	return s.srv.Serve(ln)
}

// Shutdown stops the admin server (and ends the dashboard's event streams).
func (s *Server) Shutdown() error {
	s.stopOnce.Do(func() { close(s.done) })
	return s.srv.Shutdown()
}

func (s *Server) handle(c *fasthttp.RequestCtx) {
	path := string(c.Path())
	if path == "/ui" || strings.HasPrefix(path, "/ui/") || strings.HasPrefix(path, "/api/v1/") {
		s.handleDashboard(c, path) // ui.go
		return
	}
	if !s.openProbe(c) && s.authenticate(c, false) == authFailed {
		c.Response.Header.Set("WWW-Authenticate", `Bearer realm="sluice-admin"`)
		engine.WriteError(&c.Response, fasthttp.StatusUnauthorized)
		return
	}
	if path == "/reload" {
		if !c.IsPost() {
			c.Response.Header.Set("Allow", "POST")
			engine.WriteError(&c.Response, fasthttp.StatusMethodNotAllowed)
			return
		}
		s.handleReload(c)
		return
	}
	if !c.IsGet() && !c.IsHead() {
		c.Response.Header.Set("Allow", "GET, HEAD")
		engine.WriteError(&c.Response, fasthttp.StatusMethodNotAllowed)
		return
	}
	switch path {
	case "/healthz":
		c.SetContentType("text/plain; charset=utf-8")
		c.SetBodyString("ok\n")
	case "/readyz":
		s.handleReady(c)
	case "/config":
		writeJSON(c, fasthttp.StatusOK, Redact(s.current().Spec))
	case "/upstreams":
		writeJSON(c, fasthttp.StatusOK, upstreamStatus(s.current()))
	case "/metrics":
		s.metrics(c)
	default:
		engine.WriteError(&c.Response, fasthttp.StatusNotFound)
	}
}

// openProbe reports whether c is a probe (/healthz, /readyz) that the running configuration
// lets through without the token (admin { probes_without_token = true }).
func (s *Server) openProbe(c *fasthttp.RequestCtx) bool {
	if !s.current().Spec.Admin.ProbesWithoutToken {
		return false
	}
	p := string(c.Path())
	return p == "/healthz" || p == "/readyz"
}

func (s *Server) handleReady(c *fasthttp.RequestCtx) {
	gw := s.current()
	// A refused configuration from the source is reported, not a reason to be unready: the last
	// good one is serving.
	var source any
	if f := s.source.Load(); f != nil {
		source = (*f)()
	}
	writeJSON := func(c *fasthttp.RequestCtx, status int, v map[string]any) {
		if source != nil {
			v["config_source"] = source
		}
		writeJSON(c, status, v)
	}
	if gw.Spec.Admin.ReadyzUpstreams == engine.ReadyzIgnore {
		writeJSON(c, fasthttp.StatusOK, map[string]any{"ready": true})
		return
	}
	var down []string
	for name, u := range gw.Upstreams {
		if st, ok := u.(engine.UpstreamStatus); ok && !st.Healthy() {
			down = append(down, name)
		}
	}
	sort.Strings(down)
	if len(down) > 0 {
		writeJSON(c, fasthttp.StatusServiceUnavailable, map[string]any{"ready": false, "upstreams_without_healthy_targets": down})
		return
	}
	writeJSON(c, fasthttp.StatusOK, map[string]any{"ready": true})
}

func (s *Server) handleReload(c *fasthttp.RequestCtx) {
	if s.reload == nil {
		engine.WriteError(&c.Response, fasthttp.StatusNotImplemented)
		return
	}
	diags, err := s.reload()
	if err != nil {
		// The diagnostics come redacted (hcl.WriteDiagnostics); an error may quote a URL too.
		writeJSON(c, fasthttp.StatusUnprocessableEntity, map[string]any{"reloaded": false, "error": secret.Text(err.Error()), "diagnostics": diags})
		return
	}
	writeJSON(c, fasthttp.StatusOK, map[string]any{"reloaded": true})
}

func upstreamStatus(gw *engine.Gateway) map[string]any {
	out := map[string]any{}
	for name, u := range gw.Upstreams {
		if st, ok := u.(engine.UpstreamStatus); ok {
			out[name] = st.Status()
		} else {
			out[name] = nil
		}
	}
	return out
}

func writeJSON(c *fasthttp.RequestCtx, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		engine.WriteError(&c.Response, fasthttp.StatusInternalServerError)
		return
	}
	c.SetStatusCode(status)
	c.SetContentType("application/json")
	c.SetBody(append(b, '\n'))
}
