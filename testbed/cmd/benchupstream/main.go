// Command benchupstream is the upstream of the load benchmarks (testbed/bench): a fasthttp server
// doing as little as possible, so that what a benchmark measures is the proxy in front of it.
//
//	GET /      200, a 64-byte text/plain body
//	GET /big   200, a 16 KiB JSON body (compressible like real API output)
//	otherwise  404
//
// It listens on every address given (comma-separated), all served by one process:
//
//	benchupstream -listen 127.0.0.1:18001,127.0.0.1:18002,127.0.0.1:18003
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/valyala/fasthttp"
)

// smallBody is exactly 64 bytes.
var smallBody = []byte("sluice bench upstream: a 64-byte text/plain body for the proxy.\n")

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "comma-separated addresses to listen on")
	flag.Parse()
	if len(smallBody) != 64 {
		panic(fmt.Sprintf("small body is %d bytes, want 64", len(smallBody)))
	}
	big := BigJSON(16 << 10)
	handler := func(c *fasthttp.RequestCtx) {
		switch string(c.Path()) {
		case "/":
			c.Response.Header.SetContentType("text/plain")
			c.Response.SetBodyRaw(smallBody)
		case "/big":
			c.Response.Header.SetContentType("application/json")
			c.Response.SetBodyRaw(big)
		default:
			c.Response.SetStatusCode(fasthttp.StatusNotFound)
		}
	}
	srv := &fasthttp.Server{
		Handler:              handler,
		Name:                 "benchupstream",
		NoDefaultDate:        false,
		NoDefaultContentType: true,
		ReduceMemoryUsage:    false,
	}
	errs := make(chan error, 1)
	for _, addr := range strings.Split(*listen, ",") {
		ln, err := net.Listen("tcp", strings.TrimSpace(addr))
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchupstream:", err)
			os.Exit(1)
		}
		go func() { errs <- srv.Serve(ln) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		_ = srv.Shutdown()
	case err := <-errs:
		fmt.Fprintln(os.Stderr, "benchupstream:", err)
		os.Exit(1)
	}
}

// BigJSON returns a JSON array of catalog-like objects exactly n bytes long (n ≥ 64): varied
// enough that gzip level 1 and 6 differ, regular enough to compress like real API responses.
func BigJSON(n int) []byte {
	var b strings.Builder
	b.WriteString("[")
	items := 0
	for i := 0; ; i++ {
		item := fmt.Sprintf(`{"id":%d,"sku":"SKU-%05d","name":"Item %d of the catalog","price":%d.%02d,"stock":%d,"tags":["t%d","t%d"]}`,
			i, (i*7919)%100000, i, 3+(i*37)%500, (i*13)%100, (i*101)%1000, i%17, i%5)
		if b.Len()+len(item)+2 > n {
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(item)
		items++
	}
	// Pad with a final string element ("xxx", after a comma unless it is the only one) so the
	// body is exactly n bytes; spaces when even "" does not fit.
	pad := n - b.Len() - 1
	out := []byte(b.String())
	sep := 0
	if items > 0 {
		sep = 1
	}
	switch {
	case pad >= 2+sep:
		if sep == 1 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, strings.Repeat("x", pad-2-sep)...)
		out = append(out, '"')
	case pad > 0:
		out = append(out, strings.Repeat(" ", pad)...)
	}
	out = append(out, ']')
	return out
}
