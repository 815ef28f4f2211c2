// Command sluice is the gateway's CLI: run, validate, fmt, version, and helpers for filter authors.
package main

import (
	"fmt"
	"os"
	"sort"
)

// command is a subcommand; each lives in its own file and adds itself to commands in init.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func init() {
	commands["version"] = command{summary: "print the version", run: func([]string) int {
		fmt.Println("sluice", version)
		return 0
	}}
}

func main() {
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
	fmt.Fprintln(os.Stderr, "\nRun 'sluice <command> -h' for a command's flags.")
}
