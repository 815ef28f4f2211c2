package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
)

func init() {
	commands["validate"] = command{summary: "check a configuration without serving it", run: runValidate}
	commands["fmt"] = command{summary: "rewrite configuration files in canonical HCL style", run: runFmt}
}

func runValidate(args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("c", "gateway.hcl", "configuration file")
	if status, ok := parseFlags(fs, args); !ok {
		return status
	}
	if !configArg(fs, path) {
		return 2
	}
	if boot, ok := loadBootstrap(*path, os.Stderr); !ok {
		return 1
	} else if boot != nil {
		fmt.Printf("%s: bootstrap file is valid (the configuration comes from etcd %s)\n", *path, boot.Prefix)
		return 0
	}
	gw, ok := loadAndBuild(*path, os.Stderr, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !ok {
		return 1
	}
	_ = gw.Close()
	fmt.Printf("%s: configuration is valid\n", *path)
	return 0
}

// loadAndBuild loads and builds a config, printing every diagnostic to w.
func loadAndBuild(path string, w io.Writer, validating bool, log *slog.Logger) (*engine.Gateway, bool) {
	cfg, diags := hcl.LoadFile(path, filters.Builtin())
	if !diags.HasErrors() {
		// Keep the loader's warnings (unsafe settings) with the build's diagnostics.
		gw, bdiags := cfg.Build(engine.BuildOptions{Logger: log, Validating: validating})
		diags = append(diags, bdiags...)
		if !diags.HasErrors() {
			if len(diags) > 0 {
				_ = cfg.WriteDiagnostics(w, diags)
			}
			return gw, true
		}
	}
	_ = cfg.WriteDiagnostics(w, diags)
	fmt.Fprintf(w, "%s: %d error(s)\n", path, countErrors(diags))
	return nil, false
}

func countErrors(diags interface{ Errs() []error }) int { return len(diags.Errs()) }

func runFmt(args []string) int {
	fs := flag.NewFlagSet("fmt", flag.ContinueOnError)
	check := fs.Bool("check", false, "only report files that are not formatted (exit 1 if any)")
	path := fs.String("c", "", "configuration file (or give files as arguments; - reads stdin and writes stdout)")
	if status, ok := parseFlags(fs, args); !ok {
		return status
	}
	files := fs.Args()
	if *path != "" {
		files = append(files, *path)
	}
	if len(files) == 0 {
		files = []string{"gateway.hcl"}
	}
	status := 0
	for _, f := range files {
		var src []byte
		var err error
		if f == "-" {
			src, err = io.ReadAll(os.Stdin)
		} else {
			src, err = os.ReadFile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sluice fmt:", err)
			status = 1
			continue
		}
		out, diags := hcl.Format(f, src)
		if diags.HasErrors() {
			cfg, _ := hcl.Load(f, src, filters.Builtin())
			_ = cfg.WriteDiagnostics(os.Stderr, diags)
			status = 1
			continue
		}
		if f == "-" {
			// A filter, as gofmt is: the formatted text on stdout, or with -check only the verdict.
			if *check && string(out) != string(src) {
				fmt.Println("-")
				status = 1
			} else if !*check {
				if _, err := os.Stdout.Write(out); err != nil {
					fmt.Fprintln(os.Stderr, "sluice fmt:", err)
					status = 1
				}
			}
			continue
		}
		if string(out) == string(src) {
			continue
		}
		if *check {
			fmt.Println(f)
			status = 1
			continue
		}
		if err := os.WriteFile(f, out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "sluice fmt:", err)
			status = 1
		}
	}
	return status
}
