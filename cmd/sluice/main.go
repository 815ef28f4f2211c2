// Command sluice is the gateway's CLI: run, validate, fmt, version, and helpers for filter authors.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"time"

	"github.com/sluice-gateway/sluice/engine/telemetry"
)

// command is a subcommand; each lives in its own file and adds itself to commands in init.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

// version, commit and buildTime are set at build time by make build / make dist with
// -ldflags "-X main.version=v1.2.3 -X main.commit=<sha> -X main.buildTime=<unix seconds>".
// buildTime is the commit's time (SOURCE_DATE_EPOCH), never the clock of the build, so that two
// builds of one commit are byte for byte the same. Without them (go build, go install …@vX) they
// come from the build information Go records: the module version, vcs.revision and vcs.time.
var (
	version   = "dev"
	commit    = ""
	buildTime = ""
)

func init() {
	version, commit, buildTime = buildIdentity(version, commit, buildTime)
	telemetry.UserAgent += "/" + version
	commands["version"] = command{summary: "print the version, commit, Go version and build time", run: func([]string) int {
		fmt.Print(versionText())
		return 0
	}}
}

// buildIdentity fills what -ldflags left unset from the binary's build information.
func buildIdentity(v, c, t string) (string, string, string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v, c, t
	}
	var vcsTime string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if c == "" {
				c = s.Value
			}
		case "vcs.time":
			vcsTime = s.Value
		}
	}
	if v == "dev" {
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v = mv
		} else if len(c) >= 12 {
			v = "dev+" + c[:12]
		}
	}
	if t == "" {
		t = vcsTime
	} else if sec, err := strconv.ParseInt(t, 10, 64); err == nil {
		t = time.Unix(sec, 0).UTC().Format(time.RFC3339)
	}
	return v, c, t
}

// versionText is what `sluice version` prints: one "key: value" line each, easy to grep.
func versionText() string {
	orUnknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	return fmt.Sprintf("sluice %s\ncommit: %s\ngo: %s %s/%s\nbuilt: %s\n",
		version, orUnknown(commit), runtime.Version(), runtime.GOOS, runtime.GOARCH, orUnknown(buildTime))
}

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version" || os.Args[1] == "-v") {
		os.Args[1] = "version"
	}
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "sluice: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if os.Args[1] == "run" {
		keepSysmonAwake()
		atLeastTwoProcs()
	}
	os.Exit(cmd.run(os.Args[2:]))
}

// parseFlags parses a subcommand's flags. It returns ok false with the exit status when the
// command must stop: 0 after -h/--help (help was asked for), 2 after a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) (status int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// configArg takes the configuration file from a positional argument, as `sluice run FILE` and
// `sluice validate FILE`, beside -c. It refuses anything else on the command line: an argument
// silently ignored would serve or check a different file than the one named (flags after the
// file are not parsed by package flag, so `run FILE --watch` is refused too, with the fix).
func configArg(fs *flag.FlagSet, path *string) bool {
	switch {
	case fs.NArg() == 0:
		return true
	case fs.NArg() > 1:
		fmt.Fprintf(os.Stderr, "sluice %s: unexpected argument %q: flags go before the configuration file (sluice %s [flags] [FILE])\n", fs.Name(), fs.Arg(1), fs.Name())
		return false
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "c" })
	if set && *path != fs.Arg(0) {
		fmt.Fprintf(os.Stderr, "sluice %s: two configuration files: -c %s and %s\n", fs.Name(), *path, fs.Arg(0))
		return false
	}
	*path = fs.Arg(0)
	return true
}

func usage() {
	fmt.Fprintln(os.Stderr, "Usage: sluice <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'sluice <command> -h' for a command's flags; 'sluice --version' prints the version.")
}
