// Command h2ceiling is the ceiling of Go's HTTP/2 stack in the load benchmark (testbed/bench):
// net/http's own HTTP/2 server answering every request itself with the upstream's 64-byte
// text/plain body, nothing else. A proxy built on the same stack cannot serve more; Sluice's
// HTTP/2 rows are read against it.
//
//	h2ceiling -listen 127.0.0.1:18105                       h2c with prior knowledge
//	h2ceiling -listen … -tls-listen 127.0.0.1:18108 -cert C -key K   and h2 over TLS (ALPN)
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// body is the benchmark upstream's 64-byte body.
var body = []byte("sluice bench upstream: a 64-byte text/plain body for the proxy.\n")

func main() {
	listen := flag.String("listen", "127.0.0.1:18105", "h2c (prior knowledge) address")
	tlsListen := flag.String("tls-listen", "", "h2 over TLS address (needs -cert and -key)")
	cert := flag.String("cert", "", "PEM certificate for -tls-listen")
	key := flag.String("key", "", "PEM key for -tls-listen")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "64")
		_, _ = w.Write(body)
	})
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	errs := make(chan error, 2)
	serve := func(addr string, tc *tls.Config) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errs <- err
			return
		}
		srv := &http.Server{Handler: h, Protocols: &p, TLSConfig: tc}
		if tc != nil {
			errs <- srv.ServeTLS(ln, "", "")
			return
		}
		errs <- srv.Serve(ln)
	}
	go serve(*listen, nil)
	if *tlsListen != "" {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "h2ceiling:", err)
			os.Exit(1)
		}
		go serve(*tlsListen, &tls.Config{Certificates: []tls.Certificate{c}})
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-errs:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "h2ceiling:", err)
			os.Exit(1)
		}
	}
}
