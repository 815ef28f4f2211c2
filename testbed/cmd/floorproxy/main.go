// Command floorproxy is the floor of the load benchmarks: the barest reverse proxy fasthttp
// allows, one HostClient with a keep-alive pool and Do(request, response) in the handler. Sluice's
// empty pipeline is measured against it (≥ 0.95× its requests per second, ≤ 1.05× its CPU per
// request): whatever Sluice costs beyond this is the price of being a gateway.
//
//	floorproxy -listen 127.0.0.1:18102 -upstream 127.0.0.1:18001
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // only served with -pprof
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18102", "address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:18001", "upstream host:port")
	reduceMemory := flag.Bool("reduce-memory", false, "fasthttp's ReduceMemoryUsage: release idle connections' buffers (to measure what it saves)")
	pprofAddr := flag.String("pprof", "", "serve Go's pprof endpoints on this address (to compare profiles with Sluice's)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "floorproxy: pprof:", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	hc := &fasthttp.HostClient{
		Addr:                   *upstream,
		MaxConns:               4096,
		MaxIdleConnDuration:    time.Minute,
		DisablePathNormalizing: true,
		ReadTimeout:            15 * time.Second,
		WriteTimeout:           15 * time.Second,
	}
	srv := &fasthttp.Server{
		Name:                  "floorproxy",
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		NoDefaultDate:         true,
		ReduceMemoryUsage:     *reduceMemory,
		Handler: func(c *fasthttp.RequestCtx) {
			if err := hc.Do(&c.Request, &c.Response); err != nil {
				c.Response.Reset()
				c.Error("bad gateway\n", fasthttp.StatusBadGateway)
			}
		},
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorproxy:", err)
		os.Exit(1)
	}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		_ = srv.Shutdown()
	case err := <-errs:
		fmt.Fprintln(os.Stderr, "floorproxy:", err)
		os.Exit(1)
	}
}
