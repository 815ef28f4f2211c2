// Command testbed runs the servers Sluice's tests, demos and benchmarks use.
//
//	testbed upstream -listen 127.0.0.1:9001 -name a [-delay 50ms] [-fail-ratio 0.2] [-log FILE]
//	testbed dns -listen 127.0.0.1:8053   (every name is 127.0.0.1: a resolver for Pebble, examples/acme)
//	testbed auth -listen 127.0.0.1:9100  (a forward_auth service for examples/forward-auth: testbed/authdemo)
//
// It prints "listening on ADDR" once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-gateway/sluice/testbed/authdemo"
	"github.com/sluice-gateway/sluice/testbed/fakedns"
	"github.com/sluice-gateway/sluice/testbed/upstream"
	"github.com/valyala/fasthttp"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testbed upstream|dns|auth [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "upstream":
		os.Exit(runUpstream(os.Args[2:]))
	case "dns":
		os.Exit(runDNS(os.Args[2:]))
	case "auth":
		os.Exit(runAuth(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "testbed: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func runUpstream(args []string) int {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on (port 0 picks one)")
	name := fs.String("name", "upstream", "name reported in X-Upstream and the echo")
	delay := fs.Duration("delay", 0, "delay before every answer")
	failRatio := fs.Float64("fail-ratio", 0, "share of requests answered 503")
	logPath := fs.String("log", "", "append one line per request (METHOD X-Test-Id) to this file")
	_ = fs.Parse(args)

	opt := upstream.Options{Name: *name, Delay: *delay, FailRatio: *failRatio}
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testbed:", err)
			return 1
		}
		defer f.Close()
		opt.Log = f
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	s := upstream.New(opt)
	srv := &fasthttp.Server{Handler: s.Handle, MaxRequestBodySize: 256 << 20, ReadBufferSize: 64 << 10,
		DisablePreParseMultipartForm: true, Name: "testbed"}
	fmt.Printf("listening on %s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = srv.Shutdown()
	}()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	return 0
}

func runDNS(args []string) int {
	fs := flag.NewFlagSet("dns", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8053", "address to answer DNS on, UDP and TCP (port 0 picks one)")
	_ = fs.Parse(args)
	addr, stop, err := fakedns.Serve(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	defer stop()
	fmt.Println("listening on", addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return 0
}

// runAuth serves testbed/authdemo's authorization service.
func runAuth(args []string) int {
	fs := flag.NewFlagSet("auth", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9100", "address to listen on (port 0 picks one)")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	srv := &fasthttp.Server{Handler: authdemo.Handler(authdemo.DefaultTokens), Name: "testbed-auth"}
	fmt.Printf("listening on %s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = srv.Shutdown()
	}()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	return 0
}
