// Command bench is Sluice's load benchmark against nginx, HAProxy and a bare fasthttp proxy (the
// floor), all on the same machine in one interleaved invocation; see testbed/bench/README.md.
//
//	bench run -mode quick|full|smoke   the benchmark (testbed/bench/run.sh builds and calls it)
//	bench load -addr … -rate …         a fixed-rate, open-loop load generator (JSON result)
//	bench tlsload -addr … [-resume]    a TLS handshake per request (full or resumed; JSON result)
//	bench conns -addr … -n 10000       opens idle keep-alive connections and holds them
//	bench sink -listen … [-decode]     an OTLP/HTTP endpoint that discards (or decodes and counts) what it receives
//	bench tracing -rounds 3 -d 10s     tracing at sample_ratio 1 against tracing off: CPU per request, spans dropped
//	bench profile -variant empty       CPU and allocation profiles of Sluice under load (bin/sluiceprof)
//	bench report -json FILE             renders the table and chart again from a run's JSON
//	bench headers                      prints the quickstart case's request headers (for manual runs)
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench run|load|conns|sink [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{"run": runMain, "load": loadMain, "conns": connsMain, "sink": sinkMain, "headers": headersMain, "profile": profileMain, "report": reportMain, "tlsload": tlsLoadMain, "tracing": tracingMain}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if os.Args[1] == "run" {
		// Ctrl-C: the deferred cleanup in runMain stops every started process; make the signal
		// reach it as a panic-free exit path by turning it into an error return.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			<-sig
			interrupted.Store(true)
		}()
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
