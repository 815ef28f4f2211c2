package main

import (
	"bytes"
	"flag"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/valyala/fasthttp"
)

// sinkMain is `bench sink`: an OTLP/HTTP endpoint that accepts and discards traces and logs, so
// that tracing's cost in the benchmark is Sluice's (sampling, span building, export) and not a
// receiver's. An empty protobuf message is a valid Export…ServiceResponse.
func sinkMain(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	listen := fs.String("listen", addr(portSink), "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var exports atomic.Int64
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/count" {
			// How many export requests arrived: the harness checks that tracing really exported.
			c.Response.SetBodyString(strconv.FormatInt(exports.Load(), 10))
			return
		}
		exports.Add(1)
		ct := c.Request.Header.ContentType()
		c.Response.Header.SetContentTypeBytes(ct)
		if bytes.Contains(ct, []byte("json")) {
			c.Response.SetBodyString("{}")
		}
	}, MaxRequestBodySize: 64 << 20}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = srv.Shutdown()
	}()
	return srv.Serve(ln)
}
