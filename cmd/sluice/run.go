package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/admin"
	"github.com/sluice-gateway/sluice/engine/secret"
	"github.com/sluice-gateway/sluice/engine/telemetry"
)

func init() {
	commands["run"] = command{summary: "serve the gateway described by a configuration", run: runRun}
}

func runRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "gateway.hcl", "configuration file")
	watch := fs.Bool("watch", false, "reload when the configuration file changes")
	takeover := fs.Bool("takeover", false, "take the listening sockets over from the gateway serving these addresses (through its handover socket); once this one serves, that one drains and exits: a zero-downtime upgrade")
	handover := fs.String("takeover-socket", "", "the handover socket this gateway serves, and where --takeover asks (default: sluice-<first listen address>.sock in $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR or the temporary directory)")
	logFormat := fs.String("log-format", "text", "gateway log format: text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if status, ok := parseFlags(fs, args); !ok {
		return status
	}
	if !configArg(fs, path) {
		return 2
	}
	log, err := newLogger(*logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice run:", err)
		return 2
	}
	raiseOpenFileLimit(log)
	// Signals are caught from the start: one that arrives while starting is handled once serving.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)

	// A bootstrap file (a config_source block alone) takes the configuration from etcd (fleet.go).
	boot, ok := loadBootstrap(*path, os.Stderr)
	if !ok {
		return 1
	}
	var gw *engine.Gateway
	var fl *fleet
	cfgPath := *path
	if boot != nil {
		if *watch {
			log.Error("cannot start", "err", errFleetWatch)
			return 2
		}
		if fl, gw, cfgPath, ok = startFleet(boot, log); !ok {
			return 1
		}
		defer fl.stop()
	} else if gw, ok = loadAndBuild(*path, os.Stderr, false, log); !ok {
		return 1
	}
	r := &runner{path: cfgPath, log: log, failed: make(chan error, 1), takenOver: make(chan struct{}, 1)}
	if fl != nil {
		r.source = fl.readyDetail
	}
	telemetry.Version = version
	telemetry.SetBuildInfo(version, commit)
	if _, err := r.attachTelemetry(gw); err != nil {
		log.Error("cannot start telemetry", "err", err)
		_ = gw.Close()
		return 1
	}
	telemetry.RecordReload(nil, "") // the initial load
	// With --takeover, the running gateway's sockets; without a gateway answering on the
	// handover socket, the addresses are shared with SO_REUSEPORT as a fallback.
	var old *handoverClient
	var inherited map[string]net.Listener
	var admLn net.Listener
	if *takeover {
		from := *handover
		if from == "" {
			from = handoverPath(gw.Spec, "")
		}
		var admAddr string
		if old, inherited, admLn, admAddr, err = requestHandover(from); err != nil {
			log.Warn("no handover; sharing the addresses with SO_REUSEPORT instead (connections still queued on the other process's sockets when it stops are reset)", "err", err)
		} else {
			log.Info("took the listening sockets over", "from", from, "sockets", len(inherited))
			if admLn != nil && admAddr != gw.Spec.Admin.Listen {
				_ = admLn.Close() // the admin API moved: this one binds its own address
				admLn = nil
			}
		}
	}
	if err := r.startServer(gw, *takeover, inherited); err != nil {
		log.Error("cannot start", "err", err)
		if errors.Is(err, engine.ErrAddressInUse) {
			log.Error("to take over from the process serving these addresses, start with --takeover")
		}
		_ = gw.Close()
		if admLn != nil {
			_ = admLn.Close()
		}
		return 1
	}
	if err := r.startAdmin(gw.Spec.Admin, admLn); err != nil {
		log.Error("cannot start the admin API", "err", err)
		r.srv.Load().Shutdown(context.Background())
		return 1
	}
	hpath := *handover
	if hpath == "" {
		hpath = handoverPath(gw.Spec, r.firstBound)
	}
	hs, err := r.serveHandover(hpath)
	if err != nil {
		log.Warn("no handover socket: this gateway cannot hand its sockets to a new process", "err", err)
	}
	if old != nil {
		if err := old.ready(); err != nil {
			log.Warn("the old process was not told to stop; stop it with SIGTERM", "err", err)
		}
	}
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("sd_notify", "err", err)
	}

	stop := make(chan struct{})
	if fl != nil {
		fl.run(r)
	}
	if *watch {
		// The files as they are now, before "serving" says that changing them takes effect.
		go r.watch(stop, r.stamps())
	}
	log.Info("serving", "listeners", len(gw.Spec.EffectiveListeners()), "pipelines", len(gw.Pipelines), "config", *path)

	takenOver := false
serve:
	for {
		select {
		case err := <-r.failed:
			log.Error("server stopped", "err", err)
			return 1
		case <-r.takenOver:
			takenOver = true
			log.Info("a new process took the listening sockets over; draining")
			break serve
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if _, err := r.reload(); err != nil {
					log.Error("reload failed; the running configuration stays", "err", err)
				}
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			break serve
		}
	}
	_ = sdNotify("STOPPING=1")
	if hs != nil {
		hs.close(!takenOver)
	}
	close(stop)
	grace := r.srv.Load().Gateway().Spec.Server.ShutdownTimeout.D()
	// The process ends even if something the shutdown waits for never returns: it has
	// shutdown_timeout to drain, and a few seconds more to close what it built.
	exitAt := time.Now().Add(grace + 5*time.Second)
	time.AfterFunc(time.Until(exitAt), func() {
		log.Error("shutdown did not finish within shutdown_timeout + 5s; exiting")
		os.Exit(1)
	})
	// No reload from here on; one still building gives up at its filters' load timeouts.
	r.mu.Lock()
	srv := r.srv.Load()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	err = srv.Shutdown(ctx)
	cancel()
	if r.adm != nil {
		_ = r.adm.Shutdown()
	}
	// The spans still queued get what is left before the exit timer, less a margin.
	r.shutdownTelemetryBy(exitAt.Add(-time.Second))
	if err != nil {
		log.Error("shutdown did not finish cleanly", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// runner owns the running server, the admin API and reloading.
type runner struct {
	path   string
	log    *slog.Logger
	srv    atomic.Pointer[engine.Server]
	adm    *admin.Server
	admCfg engine.AdminConfig
	// lns are the running server's listening sockets by configured address, admLn the admin
	// API's: what a handover duplicates (handover.go). firstBound is the first listener's
	// bound address.
	lns        map[string]net.Listener
	admLn      net.Listener
	firstBound string
	takenOver  chan struct{} // a new process serves the sockets handed to it
	failed     chan error    // a server that stopped on its own
	mu         sync.Mutex    // one reload at a time
	tel        telemetryState
	source     func() any // the configuration source's /readyz detail (fleet.go), or nil
}

// current is the gateway serving new requests (the admin API reads it).
func (r *runner) current() *engine.Gateway { return r.srv.Load().Gateway() }

// startServer makes a server for gw, binds its listeners and serves. takeover allows addresses
// other sockets listen on (engine.Server.Takeover); inherited are listening sockets to serve
// instead of binding their addresses (engine.Server.Inherited): a reload's new server gets the
// old one's, a --takeover process the old process's. startServer closes those it does not use.
func (r *runner) startServer(gw *engine.Gateway, takeover bool, inherited map[string]net.Listener) error {
	srv, err := engine.NewServer(gw, r.log)
	if err != nil {
		closeListeners(inherited)
		return err
	}
	srv.Takeover = takeover
	srv.Inherited = inherited
	lns, err := srv.ListenAll()
	closeListeners(srv.Inherited) // the addresses no listener has any more
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	r.srv.Store(srv)
	r.lns = map[string]net.Listener{}
	for i, l := range gw.Spec.EffectiveListeners() {
		r.lns[l.Address] = lns[l.Name]
		if i == 0 {
			r.firstBound = lns[l.Name].Addr().String()
		}
	}
	go func() {
		if err := srv.ServeAll(lns); err != nil {
			select {
			case r.failed <- err:
			default:
			}
		}
	}()
	for _, l := range gw.Spec.EffectiveListeners() {
		r.log.Info("listening", "listener", l.Name, "listen", lns[l.Name].Addr().String(), "tls", l.TLS != nil)
	}
	return nil
}

// startAdmin serves the admin API as cfg says ("" listen: off), on ln if given (the socket a
// handover passed), else on a socket it binds.
func (r *runner) startAdmin(cfg engine.AdminConfig, ln net.Listener) error {
	r.admCfg = cfg
	r.adm = nil
	r.admLn = nil
	if cfg.Listen == "" {
		if ln != nil {
			_ = ln.Close()
		}
		return nil
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("admin API on %s: %w", cfg.Listen, err)
		}
	}
	adm := admin.New(cfg, r.current, r.reload)
	adm.SetStartTime(processStart) // dashboard.go
	adm.SetConnections(func() int { return r.srv.Load().OpenConnections() })
	if r.source != nil {
		adm.SetSource(r.source)
	}
	r.adm = adm
	r.admLn = ln
	go func() { _ = adm.Serve(ln) }()
	r.log.Info("admin API", "listen", ln.Addr().String(), "dashboard", dashboardURL(ln.Addr()))
	return nil
}

// moveAdmin applies a changed admin block. A new token takes effect in place; a new address gets
// a new admin server, and the old one is shut down in the background (a POST /reload that
// caused this is still being answered by it).
func (r *runner) moveAdmin(cfg engine.AdminConfig) {
	if r.adm != nil && cfg.Listen == r.admCfg.Listen {
		r.adm.SetToken(cfg.Token)
		r.admCfg = cfg
		return
	}
	old := r.adm
	if err := r.startAdmin(cfg, nil); err != nil {
		r.log.Error("the admin API could not move; it is off until the next reload", "err", err)
	}
	if old != nil {
		go func() { _ = old.Shutdown() }()
	}
}

// reload loads and builds the configuration file again and swaps it in; on any error the
// running configuration stays and the diagnostics are returned. Certificates are swapped into
// the running listeners. A changed server block or listener (address, limits, TLS parameters)
// gets a new server: it serves the old server's sockets of the addresses it keeps (duplicates,
// so no queued connection is lost), then the old one stops accepting and finishes what it
// accepted. A new address must be free. The service manager hears RELOADING=1, then READY=1.
func (r *runner) reload() (string, error) { return r.reloadPath("") }

// reloadPath is reload from the configuration file at path (a bundle from etcd), which then
// becomes the one reload reads; "" reloads the current one.
func (r *runner) reloadPath(path string) (diags string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { telemetry.RecordReload(err, diags) }() // the dashboard's "last reload"
	if err := sdNotify(sdReloading()); err != nil {
		r.log.Warn("sd_notify", "err", err)
	}
	defer sdNotify("READY=1")
	if path == "" {
		path = r.path
	}
	var diag bytes.Buffer
	gw, ok := loadAndBuild(path, &diag, false, r.log)
	if !ok {
		r.log.Error("configuration rejected", "diagnostics", diag.String())
		telemetry.ConfigReloaded(false)
		return diag.String(), errors.New("the new configuration has errors; the running one stays")
	}
	if diag.Len() > 0 {
		r.log.Warn("the new configuration has warnings", "diagnostics", diag.String())
	}
	retire, err := r.attachTelemetry(gw)
	if err != nil {
		_ = gw.Close()
		telemetry.ConfigReloaded(false)
		return "", fmt.Errorf("telemetry: %w", err)
	}
	old := r.srv.Load()
	var drained <-chan struct{}
	if sameServer(old.Gateway().Spec, gw.Spec) {
		drained = old.Swap(gw)
	} else {
		inherited, err := dupListeners(r.lns)
		if err == nil {
			err = r.startServer(gw, false, inherited)
		}
		if err != nil {
			_ = gw.Close()
			retire()
			telemetry.ConfigReloaded(false)
			return "", fmt.Errorf("the new server block: %w", err)
		}
		// The previous server stops accepting before the reload returns: a connection made
		// after it must reach the new server. Its open connections drain in the background.
		old.StopAccepting()
		done := make(chan struct{})
		drained = done
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), old.Gateway().Spec.Server.ShutdownTimeout.D())
			defer cancel()
			if err := old.Shutdown(ctx); err != nil {
				r.log.Warn("the previous listener did not drain in time", "err", err)
			}
		}()
	}
	go func() {
		<-drained
		retire()
	}()
	if gw.Spec.Admin != r.admCfg {
		r.moveAdmin(gw.Spec.Admin)
	}
	r.path = path
	telemetry.ConfigReloaded(true)
	r.log.Info("configuration reloaded", "pipelines", len(gw.Pipelines))
	return "", nil
}

// watch polls the config file and every file the running configuration read (Wasm modules,
// file() arguments, keys and certificates: engine.Gateway.Inputs) and reloads when one changes.
// A file that joins the set with a reload is recorded, not reloaded for.
func (r *runner) watch(stop <-chan struct{}, last map[string]fileStamp) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			var changed []string
			now := map[string]fileStamp{}
			for _, p := range r.watched() {
				now[p] = stampOf(p)
				if prev, known := last[p]; known && prev != now[p] {
					changed = append(changed, p)
				}
			}
			last = now
			if len(changed) == 0 {
				continue
			}
			r.log.Info("configuration inputs changed; reloading", "files", changed)
			if _, err := r.reload(); err != nil {
				r.log.Error("reload failed; the running configuration stays", "err", err)
			}
		}
	}
}

// stamps records the watched files as they are now.
func (r *runner) stamps() map[string]fileStamp {
	m := map[string]fileStamp{}
	for _, p := range r.watched() {
		m[p] = stampOf(p)
	}
	return m
}

// watched is the config file and the running configuration's inputs.
func (r *runner) watched() []string {
	return append([]string{r.path}, r.current().Inputs...)
}

// fileStamp tells a file's versions apart: a rebuilt module has a new time or size, a file
// replaced by a rename also a new inode. The zero stamp stands for a missing file.
type fileStamp struct {
	mod   time.Time
	size  int64
	inode uint64
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{mod: st.ModTime(), size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.inode = sys.Ino
	}
	return s
}

// sameServer reports whether a running server made for a can serve b: the same server block and
// listeners, certificates aside (a running server swaps those in place).
func sameServer(a, b *engine.Spec) bool {
	sa, sb := a.Server, b.Server
	sa.TLS, sb.TLS = nil, nil // the implicit listener's, compared by SameListeners
	return reflect.DeepEqual(sa, sb) && engine.SameListeners(a, b)
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid -log-level %q", level)
	}
	opt := &slog.HandlerOptions{Level: lv, ReplaceAttr: redactAttr}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opt)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opt)), nil
	}
	return nil, fmt.Errorf("invalid -log-format %q: use text or json", format)
}

// redactAttr hides the credentials in the gateway's log lines: URL userinfo and credential
// query parameters (a jwks_url with ?access_token= in a fetch error), Bearer and Basic tokens
// (secret.Text), in the message and in every string or error attribute.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); secret.Text(s) != s {
			a.Value = slog.StringValue(secret.Text(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s := err.Error(); secret.Text(s) != s {
				a.Value = slog.StringValue(secret.Text(s))
			}
		}
	}
	return a
}

// raiseOpenFileLimit lifts the soft open-file limit to the hard one: a gateway holds two sockets
// per proxied connection.
func raiseOpenFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("cannot raise the open-file limit", "err", err)
		}
	}
}
