package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profileMain is `bench profile`: it serves one Sluice variant with bin/sluiceprof on core 1,
// loads it with wrk from core 0, and saves a CPU and an allocation profile of the same window,
// with `go tool pprof -top` summaries beside them.
func profileMain(args []string) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	variant := fs.String("variant", "empty", "empty | quickstart | p2c | one quickstart part alone: otel_log, jwt, rate_limit, wasm, tracing")
	out := fs.String("out", "testbed/results", "folder for the profiles")
	bin := fs.String("bin", "bin", "folder of the binaries (sluiceprof, benchupstream, sluice)")
	dur := fs.Duration("d", 10*time.Second, "profiled duration")
	conns := fs.Int("c", 64, "wrk connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	wd, _ := os.Getwd()
	h := &harness{opt: options{bin: *bin, repo: wd, out: *out}, variants: map[string]sluiceVariant{}}
	defer h.cleanup()
	var err error
	if h.run, err = os.MkdirTemp("", "sluice-profile-"); err != nil {
		return err
	}
	// Everything in it (binary snapshots, the guest, logs) is scratch: about 200 MB a run.
	defer os.RemoveAll(h.run)
	if err := h.snapshotBinaries(); err != nil {
		return err
	}
	if h.script, err = writeWrkScript(h.run); err != nil {
		return err
	}
	if err := h.ensureUpstream(3); err != nil {
		return err
	}
	v := sluiceVariant{name: *variant}
	switch *variant {
	case "empty":
	case "p2c":
		v.policy, v.targets = "p2c_ewma", 3
	default:
		token, err := mintHS256(benchHMACSecret, "https://bench.sluice/", "bench", "bench-user", 24*time.Hour)
		if err != nil {
			return err
		}
		wasm, err := buildWasmFilter(wd, h.run)
		if err != nil {
			return err
		}
		for _, c := range components(h.run, wasm, token, false) {
			if *variant != "quickstart" && c.name != *variant {
				continue
			}
			if err := h.checkVariant(sluiceVariant{name: "check-" + c.name, parts: []component{c}}); err != nil {
				h.logf("left out %s: %v", c.name, err)
				continue
			}
			v.parts = append(v.parts, c)
		}
		if len(v.parts) == 0 {
			return fmt.Errorf("unknown or unavailable variant %q", *variant)
		}
	}
	port := portSluiceBase + 40
	conf := filepath.Join(h.run, "profile.hcl")
	if err := os.WriteFile(conf, []byte(v.hcl(port)), 0o644); err != nil {
		return err
	}
	pprofAddr := addr(18400)
	// sluiceprof runs the engine without cmd/sluice: give it the runtime setting `sluice run` gives
	// itself, so that the profile is of the same process.
	p, err := h.start("sluiceprof", "1", []string{"GODEBUG=" + sysmonGodebug}, h.binPath("sluiceprof"), "-c", conf, "-pprof", pprofAddr)
	if err != nil {
		return err
	}
	c := &benchCase{Label: v.name, Path: "/", port: port, headers: v.headers(), proc: p, Conns: *conns}
	if err := h.warm(c, 100); err != nil {
		return err
	}
	h.opt.warm = 2 * time.Second
	h.cases = []*benchCase{c}
	h.prewarm()
	type fetched struct {
		name string
		err  error
	}
	done := make(chan fetched, 2)
	secs := int(dur.Seconds())
	base := filepath.Join(*out, "profile-"+*variant)
	for _, kind := range []string{"profile", "allocs"} {
		go func() {
			name := base + map[string]string{"profile": "-cpu.pprof", "allocs": "-allocs.pprof"}[kind]
			done <- fetched{name, fetchTo(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", pprofAddr, kind, secs), name)}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	a := h.sample(p)
	w, werr := runWrk("0", h.script, c.url(), c.Conns, *dur+2*time.Second, c.headers)
	b := h.sample(p)
	if werr != nil {
		return werr
	}
	var files []string
	for i := 0; i < 2; i++ {
		f := <-done
		if f.err != nil {
			return f.err
		}
		files = append(files, f.name)
	}
	h.logf("%s: %.0f rps, %.1f µs CPU per request (profiling on)", v.name, w.rps(),
		float64(b.proxy-a.proxy)/clockTick*1e6/float64(w.Requests))
	for _, f := range files {
		args := []string{"tool", "pprof", "-top", "-nodecount=45"}
		if strings.HasSuffix(f, "allocs.pprof") {
			args = append(args, "-sample_index=alloc_space")
		}
		outTxt, err := exec.Command("go", append(args, h.binPath("sluiceprof"), f)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pprof %s: %w: %s", f, err, outTxt)
		}
		txt := strings.TrimSuffix(f, ".pprof") + ".txt"
		if err := os.WriteFile(txt, outTxt, 0o644); err != nil {
			return err
		}
		fmt.Printf("==> %s\n%s\n", txt, outTxt)
	}
	return nil
}

func fetchTo(url, path string) error {
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
