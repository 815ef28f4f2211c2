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
	"sync"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/admin"
	"github.com/sluice-gateway/sluice/engine/telemetry"
)

func init() {
	commands["run"] = command{summary: "serve the gateway described by a configuration", run: runRun}
}

func runRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "gateway.hcl", "configuration file")
	watch := fs.Bool("watch", false, "reload when the configuration file changes")
	logFormat := fs.String("log-format", "text", "gateway log format: text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(*logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice run:", err)
		return 2
	}
	raiseOpenFileLimit(log)

	gw, ok := loadAndBuild(*path, os.Stderr, false, log)
	if !ok {
		return 1
	}
	r := &runner{path: *path, log: log}
	srv, err := engine.NewServer(gw, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		_ = gw.Close()
		return 1
	}
	r.srv = srv
	telemetry.Version = version
	telemetry.SetBuildInfo(version, "")
	if _, err := r.attachTelemetry(gw); err != nil {
		log.Error("cannot start telemetry", "err", err)
		_ = gw.Close()
		return 1
	}
	ln, err := srv.Listen()
	if err != nil {
		log.Error("cannot listen", "err", err)
		_ = gw.Close()
		return 1
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "listen", ln.Addr().String(), "tls", gw.Spec.Server.TLS != nil, "pipelines", len(gw.Pipelines), "config", *path)

	adm := admin.New(gw.Spec.Admin, srv.Gateway, r.reload)
	if gw.Spec.Admin.Listen != "" {
		aln, err := net.Listen("tcp", gw.Spec.Admin.Listen)
		if err != nil {
			log.Error("cannot listen for the admin API", "listen", gw.Spec.Admin.Listen, "err", err)
			_ = srv.Shutdown(context.Background())
			return 1
		}
		go func() { _ = adm.Serve(aln) }()
		log.Info("admin API", "listen", aln.Addr().String())
	}

	stop := make(chan struct{})
	if *watch {
		go r.watch(stop)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for {
		select {
		case err := <-serveErr:
			if err != nil {
				log.Error("server stopped", "err", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if _, err := r.reload(); err != nil {
					log.Error("reload failed; the running configuration stays", "err", err)
				}
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			close(stop)
			ctx, cancel := context.WithTimeout(context.Background(), gw.Spec.Server.ShutdownTimeout.D())
			err := srv.Shutdown(ctx)
			cancel()
			_ = adm.Shutdown()
			r.shutdownTelemetry()
			if err != nil {
				log.Error("shutdown did not finish cleanly", "err", err)
				return 1
			}
			log.Info("stopped")
			return 0
		}
	}
}

// runner owns reloading.
type runner struct {
	path string
	log  *slog.Logger
	srv  *engine.Server
	mu   sync.Mutex // one reload at a time
	tel  telemetryState
}

// reload loads and builds the configuration file again and swaps it in; on any error the
// running configuration stays and the diagnostics are returned.
func (r *runner) reload() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var diag bytes.Buffer
	gw, ok := loadAndBuild(r.path, &diag, false, r.log)
	if !ok {
		r.log.Error("configuration rejected", "diagnostics", diag.String())
		telemetry.ConfigReloaded(false)
		return diag.String(), errors.New("the new configuration has errors; the running one stays")
	}
	retire, err := r.attachTelemetry(gw)
	if err != nil {
		_ = gw.Close()
		telemetry.ConfigReloaded(false)
		return "", fmt.Errorf("telemetry: %w", err)
	}
	drained := r.srv.Swap(gw)
	go func() {
		<-drained
		retire()
	}()
	telemetry.ConfigReloaded(true)
	r.log.Info("configuration reloaded", "pipelines", len(gw.Pipelines))
	return "", nil
}

// watch polls the config file and reloads when it changes.
func (r *runner) watch(stop <-chan struct{}) {
	last := modTime(r.path)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if m := modTime(r.path); !m.Equal(last) {
				last = m
				if _, err := r.reload(); err != nil {
					r.log.Error("reload failed; the running configuration stays", "err", err)
				}
			}
		}
	}
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid -log-level %q", level)
	}
	opt := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opt)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opt)), nil
	}
	return nil, fmt.Errorf("invalid -log-format %q: use text or json", format)
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
