package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// sinkMain is `bench sink`: an OTLP/HTTP endpoint that accepts and discards traces and logs, so
// that tracing's cost in the benchmark is Sluice's (sampling, span building, export) and not a
// receiver's. An empty protobuf message is a valid Export…ServiceResponse.
func sinkMain(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	listen := fs.String("listen", addr(portSink), "address")
	decode := fs.Bool("decode", false, "decode every trace export with the collector's OTLP types and count its spans (/spans; /malformed counts requests that did not decode or spans without ids)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var exports, spans, malformed atomic.Int64
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/count" {
			// How many export requests arrived: the harness checks that tracing really exported.
			c.Response.SetBodyString(strconv.FormatInt(exports.Load(), 10))
			return
		}
		switch string(c.Path()) {
		case "/spans":
			c.Response.SetBodyString(strconv.FormatInt(spans.Load(), 10))
			return
		case "/malformed":
			c.Response.SetBodyString(strconv.FormatInt(malformed.Load(), 10))
			return
		}
		exports.Add(1)
		if *decode && string(c.Path()) == "/v1/traces" {
			n, err := decodeSpans(c.Request.Body(), bytes.Contains(c.Request.Header.ContentType(), []byte("json")))
			if err != nil {
				malformed.Add(1)
				c.Error(err.Error(), fasthttp.StatusBadRequest)
				return
			}
			spans.Add(int64(n))
		}
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

// decodeSpans decodes an OTLP trace export request as a collector does and returns its span
// count; a span without a trace or span id, or without a name, makes it an error.
func decodeSpans(body []byte, json bool) (int, error) {
	er := ptraceotlp.NewExportRequest()
	var err error
	if json {
		err = er.UnmarshalJSON(body)
	} else {
		err = er.UnmarshalProto(body)
	}
	if err != nil {
		return 0, err
	}
	n := 0
	rss := er.Traces().ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				s := ss.At(k)
				if s.TraceID().IsEmpty() || s.SpanID().IsEmpty() || s.Name() == "" {
					return 0, fmt.Errorf("span %d of the request has no trace id, span id or name", n)
				}
				n++
			}
		}
	}
	return n, nil
}
