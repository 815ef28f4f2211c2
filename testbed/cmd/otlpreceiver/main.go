// Command otlpreceiver receives OTLP/HTTP traces and logs and prints each trace as an indented
// tree with durations and start offsets, under a line with the request's method, path and
// status, and each log record as a line: a tracing backend for the terminal. A trace prints when
// its server span arrives, in the order the requests started. `make run` starts it on
// 127.0.0.1:4318, where the quickstart's telemetry points.
//
//	go run ./testbed/cmd/otlpreceiver -listen 127.0.0.1:4318 [-status 5xx,429] [-trace 4bf92f…]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4318", "address to receive OTLP/HTTP on")
	settle := flag.Duration("settle", 250*time.Millisecond, "wait this long after a trace's server span arrives before printing it, so traces print in order")
	quiet := flag.Duration("quiet", 5*time.Second, "print a trace without a server span once no span of it arrived for this long")
	logs := flag.Bool("logs", true, "print received log records")
	status := flag.String("status", "", "print only traces with these statuses: codes (404), classes (5xx) or error, comma-separated")
	traceID := flag.String("trace", "", "print only the trace with this id (or id prefix)")
	flag.Parse()
	filter, err := otlpreceiver.ParseTraceFilter(*status, *traceID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlpreceiver:", err)
		os.Exit(2)
	}

	r, err := otlpreceiver.Start(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "otlpreceiver: listening on %s (OTLP/HTTP: /v1/traces, /v1/logs)\n", r.Endpoint)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	printedLogs := 0
	for {
		select {
		case <-stop:
			r.Close()
			return
		case <-tick.C:
		}
		for _, tr := range append(r.CompletedTraces(*settle), r.FinishedTraces(*quiet)...) {
			if filter.Match(tr) {
				fmt.Print(otlpreceiver.FormatTrace(tr))
				fmt.Println()
			}
		}
		if *logs {
			recs := r.Logs()
			for _, l := range recs[min(printedLogs, len(recs)):] {
				fmt.Println(formatLog(l))
			}
			printedLogs = len(recs)
		}
	}
}

func formatLog(l otlpreceiver.LogRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log %s [%s] %v", l.Time.Format(time.RFC3339Nano), l.Service, l.Body)
	keys := make([]string, 0, len(l.Attributes))
	for k := range l.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, l.Attributes[k])
	}
	if l.TraceID != "" {
		fmt.Fprintf(&b, " trace_id=%s span_id=%s", l.TraceID, l.SpanID)
	}
	return b.String()
}
