package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-gateway/sluice/configsource"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/hcl"
)

// sourceKinds are the configuration sources a bootstrap file may name.
var sourceKinds = map[string]func() any{"etcd": func() any { return &configsource.EtcdConfig{} }}

// loadBootstrap reads path as a bootstrap file; cfg is nil when path is a gateway configuration.
func loadBootstrap(path string, w *os.File) (cfg *configsource.EtcdConfig, ok bool) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, true // loadAndBuild reports it
	}
	v, _, found, c, diags := hcl.LoadSource(path, src, sourceKinds)
	if !found {
		return nil, true
	}
	if len(diags) > 0 {
		_ = c.WriteDiagnostics(w, diags)
	}
	if diags.HasErrors() {
		fmt.Fprintf(w, "%s: %d error(s)\n", path, countErrors(diags))
		return nil, false
	}
	ec := v.(*configsource.EtcdConfig)
	ec.Dir, _ = filepath.Abs(filepath.Dir(path))
	return ec, true
}

// fleet is a `sluice run` whose configuration comes from etcd: it keeps the bundles it loaded
// under state_dir/bundles (the last good one named by state_dir/current, to start from when
// etcd is unreachable) and applies each pushed bundle through runner.reloadPath.
type fleet struct {
	cfg     *configsource.EtcdConfig
	src     *configsource.Etcd
	log     *slog.Logger
	dir     string // state_dir/bundles
	serving string // the ID of the bundle in use
	start   *configsource.Bundle
	cancel  context.CancelFunc
}

// startFleet connects to etcd and builds the configuration to start with: etcd's current bundle,
// or, when etcd cannot be reached within start_timeout or its bundle does not build, the last
// good one this instance served.
func startFleet(cfg *configsource.EtcdConfig, log *slog.Logger) (*fleet, *engine.Gateway, string, bool) {
	src, err := configsource.NewEtcd(cfg, log)
	if err != nil {
		log.Error("cannot use the etcd configuration source", "err", err)
		return nil, nil, "", false
	}
	f := &fleet{cfg: cfg, src: src, log: log, dir: filepath.Join(cfg.StateDir, "bundles")}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout.D())
	b, err := src.Current(ctx)
	cancel()
	switch {
	case err != nil:
		log.Warn("etcd is unreachable; starting from the last good configuration", "err", err)
	case b == nil:
		log.Warn("nothing pushed under the prefix yet (sluice push); starting from the last good configuration", "prefix", cfg.Prefix)
	default:
		var diag bytes.Buffer
		main, werr := b.WriteTo(f.dir)
		if werr == nil {
			if gw, ok := loadAndBuild(main, &diag, false, log); ok {
				f.serving, f.start = b.ID, b
				f.remember(b.ID, main)
				src.Serving(b.ID)
				return f, gw, main, true
			}
		} else {
			diag.WriteString(werr.Error())
		}
		log.Error("the configuration in etcd is refused; starting from the last good one", "bundle", b.ID, "diagnostics", diag.String())
		src.Refuse(b.ID, diag.String())
	}
	main, id, err := f.lastGood()
	if err != nil {
		log.Error("no configuration to start with", "err", err)
		_ = src.Close()
		return nil, nil, "", false
	}
	gw, ok := loadAndBuild(main, os.Stderr, false, log)
	if !ok {
		_ = src.Close()
		return nil, nil, "", false
	}
	f.serving = id
	src.Serving(id)
	return f, gw, main, true
}

// remember records the bundle in use as the last good one.
func (f *fleet) remember(id, main string) {
	rel, err := filepath.Rel(f.dir, main)
	if err == nil {
		err = os.WriteFile(filepath.Join(f.cfg.StateDir, "current"), []byte(rel+"\n"), 0o600)
	}
	if err != nil {
		f.log.Warn("cannot record the last good configuration", "state_dir", f.cfg.StateDir, "err", err)
	}
}

func (f *fleet) lastGood() (main, id string, err error) {
	b, err := os.ReadFile(filepath.Join(f.cfg.StateDir, "current"))
	if err != nil {
		return "", "", fmt.Errorf("no last good configuration in %s: %w", f.cfg.StateDir, err)
	}
	rel := strings.TrimSpace(string(b))
	id, _, _ = strings.Cut(rel, string(filepath.Separator))
	return filepath.Join(f.dir, rel), id, nil
}

// run watches etcd and applies each new bundle until stopped.
func (f *fleet) run(r *runner) {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		_ = f.src.Watch(ctx, f.start, func(b *configsource.Bundle) error {
			main, err := b.WriteTo(f.dir)
			if err != nil {
				f.log.Error("cannot write the pushed configuration; the running one stays", "bundle", b.ID, "err", err)
				return err
			}
			f.log.Info("configuration pushed; reloading", "bundle", b.ID, "revision", b.Revision)
			diags, err := r.reloadPath(main)
			if err != nil {
				if diags != "" {
					err = fmt.Errorf("%w\n%s", err, diags)
				}
				return err
			}
			prev := f.serving
			f.serving = b.ID
			f.remember(b.ID, main)
			// Keep the previous bundle too: its files may still be read by the draining gateway.
			configsource.Prune(f.dir, b.ID, prev)
			return nil
		})
	}()
}

// stop ends the watch and the connection (the status key goes with its lease).
func (f *fleet) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	_ = f.src.Close()
}

// readyDetail is the configuration source's part of /readyz.
func (f *fleet) readyDetail() any {
	st := f.src.Status()
	d := map[string]any{"kind": "etcd", "instance": st.Instance, "serving": st.Serving, "etcd_connected": st.Connected}
	if st.Refused != "" {
		d["refused"] = st.Refused
		d["error"] = st.Error
	}
	return d
}

var errFleetWatch = errors.New("--watch watches files; a configuration from etcd is watched in etcd")
