// Command sluice is the gateway's CLI: run, validate, fmt, version, and helpers for filter authors.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
)

// command is a subcommand; each lives in its own file and adds itself to commands in init.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

// version is set at build time with -ldflags "-X main.version=…"; without it, the module
// version `go install …@vX` recorded, else "dev" with the commit the binary was built from.
var version = "dev"

func init() {
	if bi, ok := debug.ReadBuildInfo(); ok && version == "dev" {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		} else {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					version = "dev+" + s.Value[:12]
				}
			}
		}
	}
	commands["version"] = command{summary: "print the version", run: func([]string) int {
		fmt.Println("sluice", version)
		return 0
	}}
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
