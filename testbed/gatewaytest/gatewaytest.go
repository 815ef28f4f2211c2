// Package gatewaytest runs a real Sluice gateway inside a test: the HCL text is loaded by the
// real hcl package with every built-in kind, built, and served by engine.Server on a random
// loopback port. It also starts real fasthttp upstreams.
package gatewaytest

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/valyala/fasthttp"
)

// Gateway is a running gateway.
type Gateway struct {
	URL  string // http://127.0.0.1:PORT (https:// with a tls block), of the first listener
	Addr string // 127.0.0.1:PORT, of the first listener
	// Addrs are every listener's addresses, by listener name ("default" without listener blocks).
	Addrs  map[string]string
	Server *engine.Server
	// Dir is the folder the config was written to; relative paths in it resolve there.
	Dir string
	// Telemetry is the gateway's telemetry (tracing per the config's telemetry block, metrics).
	Telemetry *telemetry.Telemetry

	ln     net.Listener
	done   chan error
	logBuf *enginetest.LogBuffer
}

// Options tune Start.
type Options struct {
	// Dir is where the config file is placed (relative paths resolve against it); default a temp dir.
	Dir string
	// Files are written into Dir before loading (name → content).
	Files map[string][]byte
}

// Start loads src (HCL), builds it and serves it until the test ends. Any diagnostic fails t.
func Start(t testing.TB, src string) *Gateway {
	t.Helper()
	return StartWith(t, src, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, src string, opt Options) *Gateway {
	t.Helper()
	dir := opt.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	for name, content := range opt.Files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	buf := &enginetest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The filters log into Logs too, as under `sluice run`.
	gw := build(t, src, dir, log)
	// Telemetry as `sluice run` installs it: metrics always, tracing as the config says.
	tel, err := telemetry.New(&gw.Spec.Telemetry, log)
	if err != nil {
		t.Fatalf("starting telemetry: %v", err)
	}
	tel.Attach(gw)
	srv, err := engine.NewServer(gw, log)
	if err != nil {
		t.Fatalf("starting server: %v", err)
	}
	g := &Gateway{Server: srv, Dir: dir, Telemetry: tel, done: make(chan error, 1), logBuf: buf, Addrs: map[string]string{}}
	if len(gw.Spec.Listeners) > 0 {
		// Listener blocks: each binds its own address (write 127.0.0.1:0 for a random port).
		lns, err := srv.ListenAll()
		if err != nil {
			t.Fatalf("listening: %v", err)
		}
		for name, ln := range lns {
			g.Addrs[name] = ln.Addr().String()
		}
		first := gw.Spec.Listeners[0]
		g.ln, g.Addr = lns[first.Name], g.Addrs[first.Name]
		g.URL = "http://" + g.Addr
		if first.TLS != nil {
			g.URL = "https://" + g.Addr
		}
		go func() { g.done <- srv.ServeAll(lns) }()
		t.Cleanup(func() { g.Stop(t) })
		return g
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.ln, g.Addr = ln, ln.Addr().String()
	g.Addrs[engine.DefaultListenerName] = g.Addr
	g.URL = "http://" + g.Addr
	if gw.Spec.Server.TLS != nil {
		g.URL = "https://" + g.Addr
	}
	go func() { g.done <- srv.Serve(ln) }()
	t.Cleanup(func() { g.Stop(t) })
	return g
}

// Build loads and builds src as if it were the file dir/gateway.hcl, failing t on diagnostics.
// The filters log warnings to stderr.
func Build(t testing.TB, src, dir string) *engine.Gateway {
	t.Helper()
	return build(t, src, dir, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

func build(t testing.TB, src, dir string, log *slog.Logger) *engine.Gateway {
	t.Helper()
	path := filepath.Join(dir, "gateway.hcl")
	cfg, diags := hcl.Load(path, []byte(src), filters.Builtin())
	if diags.HasErrors() {
		var b bytes.Buffer
		_ = cfg.WriteDiagnostics(&b, diags)
		t.Fatalf("config does not load:\n%s", b.String())
	}
	gw, diags := cfg.Build(engine.BuildOptions{Logger: log})
	if diags.HasErrors() {
		var b bytes.Buffer
		_ = cfg.WriteDiagnostics(&b, diags)
		t.Fatalf("config does not build:\n%s", b.String())
	}
	// SLUICE_TEST_H2_SERVER runs every test's gateway on that HTTP/2 server ("sluice" or
	// "net/http") unless its config names one.
	if v := os.Getenv("SLUICE_TEST_H2_SERVER"); v != "" && !strings.Contains(src, "h2_server") {
		gw.Spec.Server.H2Server = v
	}
	return gw
}

// Logs returns what the gateway logged so far.
func (g *Gateway) Logs() string { return g.logBuf.String() }

// Stop shuts the gateway down (idempotent; also run at test end).
func (g *Gateway) Stop(t testing.TB) {
	if g.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.Server.Shutdown(ctx)
	_ = g.Telemetry.Shutdown(ctx)
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		t.Errorf("gateway did not stop")
	}
	g.Server = nil
}

// Upstream serves h on a random loopback port until the test ends and returns "127.0.0.1:PORT".
func Upstream(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h, MaxRequestBodySize: 64 << 20, ReadBufferSize: 64 << 10, DisablePreParseMultipartForm: true}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		// A test that fails right after this call can get here before Serve has taken the
		// listener, which Shutdown then does not know of: closing it ends that Serve too, rather
		// than leaving the wait below to the test binary's timeout.
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// Client returns a fasthttp client suited to talking to g (TLS verification off for tests).
func Client() *fasthttp.Client {
	return &fasthttp.Client{MaxResponseBodySize: 64 << 20, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
}

// Reload builds src (in g.Dir) and swaps it in as a running gateway's reload does; the returned
// channel closes once the previous configuration has drained and been closed.
func (g *Gateway) Reload(t testing.TB, src string) <-chan struct{} {
	t.Helper()
	gw := build(t, src, g.Dir, slog.New(slog.NewTextHandler(g.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	g.Telemetry.Attach(gw)
	return g.Server.Swap(gw)
}
