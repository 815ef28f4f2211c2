// Command sluiceprof serves a Sluice configuration the way `sluice run` does (same loader, same
// built-in filters, same engine.Server) and adds Go's pprof endpoints on a side port, so a
// benchmark can take CPU and allocation profiles of the request path under load:
//
//	sluiceprof -c gateway.hcl -pprof 127.0.0.1:18400 &
//	wrk … & go tool pprof -top http://127.0.0.1:18400/debug/pprof/profile?seconds=10
//
// It installs telemetry as `sluice run` does and leaves out what the request path does not touch:
// the admin API, reload and signals other than SIGINT/SIGTERM. testbed/bench/profile.sh drives it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // the profiling endpoints on -pprof
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
)

func main() {
	path := flag.String("c", "gateway.hcl", "configuration file")
	pprofAddr := flag.String("pprof", "127.0.0.1:18400", "address of the pprof endpoints")
	withTelemetry := flag.Bool("telemetry", true, "install telemetry as `sluice run` does (false: measure the engine without it)")
	memRate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (bytes between sampled allocations); 0 keeps Go's default")
	flag.Parse()
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	cfg, diags := hcl.LoadFile(*path, filters.Builtin())
	if diags.HasErrors() {
		_ = cfg.WriteDiagnostics(os.Stderr, diags)
		os.Exit(1)
	}
	gw, diags := cfg.Build(engine.BuildOptions{Logger: log})
	if diags.HasErrors() {
		_ = cfg.WriteDiagnostics(os.Stderr, diags)
		os.Exit(1)
	}
	// Telemetry as `sluice run` installs it: metrics always, tracing when the block asks for it.
	var tel *telemetry.Telemetry
	var err error
	if *withTelemetry {
		tel, err = telemetry.New(&gw.Spec.Telemetry, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sluiceprof: telemetry:", err)
			os.Exit(1)
		}
		tel.Attach(gw)
	}
	srv, err := engine.NewServer(gw, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluiceprof:", err)
		os.Exit(1)
	}
	ln, err := srv.Listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluiceprof:", err)
		os.Exit(1)
	}
	go func() {
		if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "sluiceprof: pprof:", err)
			os.Exit(1)
		}
	}()
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if tel != nil {
			_ = tel.Shutdown(ctx)
		}
	case err := <-errs:
		fmt.Fprintln(os.Stderr, "sluiceprof:", err)
		os.Exit(1)
	}
}
