package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// rateResult is what a fixed-rate run measured. Latencies are taken from each request's intended
// send time, not from when it was actually written: a stalled server delays the requests queued
// behind it, and that delay counts (no coordinated omission, as in wrk2).
type rateResult struct {
	Rate      float64 `json:"rate"`
	Conns     int     `json:"conns"`
	Seconds   float64 `json:"seconds"`
	Completed int64   `json:"completed"`
	Errors    int64   `json:"errors"`
	Achieved  float64 `json:"achieved_rps"`
	P50US     float64 `json:"p50_us"`
	P90US     float64 `json:"p90_us"`
	P99US     float64 `json:"p99_us"`
	P999US    float64 `json:"p999_us"`
	MaxUS     float64 `json:"max_us"`
}

// loadMain is `bench load`: a fixed-rate HTTP/1.1 keep-alive load generator that prints one JSON
// rateResult.
func loadMain(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	target := fs.String("addr", "127.0.0.1:8080", "host:port")
	path := fs.String("path", "/", "request path")
	rate := fs.Float64("rate", 1000, "requests per second, spread evenly over the connections")
	conns := fs.Int("c", 64, "keep-alive connections")
	dur := fs.Duration("d", 10*time.Second, "measured duration")
	warm := fs.Duration("warmup", 2*time.Second, "unmeasured time at the same rate before")
	var hdrs multiFlag
	fs.Var(&hdrs, "H", "request header \"Name: value\" (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := fixedRate(*target, *path, hdrs, *rate, *conns, *warm, *dur)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ", ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// fixedRate sends rate requests per second over conns connections for warm+d and measures the
// last d. Connection i sends its k-th request at start + (k·conns + i)/rate.
func fixedRate(target, path string, headers []string, rate float64, conns int, warm, d time.Duration) (rateResult, error) {
	if rate <= 0 || conns <= 0 {
		return rateResult{}, errors.New("rate and connections must be positive")
	}
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, target)
	for _, h := range headers {
		req.WriteString(h + "\r\n")
	}
	req.WriteString("\r\n")
	reqBytes := []byte(req.String())

	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", target)
		if err != nil {
			for _, o := range cs[:i] {
				o.Close()
			}
			return rateResult{}, fmt.Errorf("connecting: %w", err)
		}
		cs[i] = c
	}
	interval := time.Duration(float64(conns) / rate * float64(time.Second))
	start := time.Now().Add(50 * time.Millisecond)
	measureFrom := start.Add(warm)
	end := measureFrom.Add(d)

	lat := make([][]float32, conns)
	errs := make([]int64, conns)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := cs[i]
			defer c.Close()
			br := bufio.NewReaderSize(c, 32<<10)
			var resp fasthttp.Response
			first := start.Add(interval * time.Duration(i) / time.Duration(conns))
			for k := 0; ; k++ {
				intended := first.Add(interval * time.Duration(k))
				if !intended.Before(end) {
					return
				}
				if w := time.Until(intended); w > 0 {
					time.Sleep(w)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(reqBytes); err != nil {
					errs[i]++
					return
				}
				resp.Reset()
				err := resp.Read(br)
				done := time.Now()
				if err != nil {
					errs[i]++
					return
				}
				if intended.Before(measureFrom) {
					continue
				}
				if resp.StatusCode() != fasthttp.StatusOK {
					errs[i]++
					continue
				}
				lat[i] = append(lat[i], float32(done.Sub(intended).Microseconds()))
			}
		}(i)
	}
	wg.Wait()
	var all []float32
	res := rateResult{Rate: rate, Conns: conns, Seconds: d.Seconds()}
	for i := range lat {
		all = append(all, lat[i]...)
		res.Errors += errs[i]
	}
	slices.Sort(all)
	res.Completed = int64(len(all))
	res.Achieved = float64(res.Completed) / d.Seconds()
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(all)-1))
		return float64(all[i])
	}
	res.P50US, res.P90US, res.P99US, res.P999US, res.MaxUS = pct(50), pct(90), pct(99), pct(99.9), pct(100)
	return res, nil
}
