package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// connsMain is `bench conns`: it opens n keep-alive connections, sends one request on each (so
// the server has set up everything a served connection keeps), prints "READY n" and then holds
// them idle until stdin closes or a signal arrives.
func connsMain(args []string) error {
	fs := flag.NewFlagSet("conns", flag.ContinueOnError)
	target := fs.String("addr", "127.0.0.1:8080", "host:port")
	n := fs.Int("n", 10000, "connections")
	par := fs.Int("p", 64, "connections being set up at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if int(lim.Cur) < *n+64 {
		return fmt.Errorf("open-file limit %d is too low for %d connections (raise ulimit -n)", lim.Cur, *n)
	}
	conns := make([]net.Conn, *n)
	req := []byte("GET / HTTP/1.1\r\nHost: " + *target + "\r\n\r\n")
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < *par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp fasthttp.Response
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				c, err := openOne(*target, req, &resp)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d connections failed, first: %v", f, *n, firstErr.Load())
	}
	fmt.Printf("READY %d\n", *n)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stdin := make(chan struct{})
	go func() { _, _ = bufio.NewReader(os.Stdin).ReadString('\n'); close(stdin) }()
	select {
	case <-sig:
	case <-stdin:
	}
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func openOne(target string, req []byte, resp *fasthttp.Response) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	resp.Reset()
	// A small reader: the response is 64 bytes, and the client's memory is not what is measured.
	if err := resp.Read(bufio.NewReaderSize(c, 1024)); err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		c.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode())
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
