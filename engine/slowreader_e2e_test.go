package engine_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// rssBytes is the test process's resident set size.
func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// dialSmallWindow connects with a 16 KiB receive buffer, so that a client that stops reading
// stops the gateway's writes soon.
func dialSmallWindow(addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return d.Dial("tcp", addr)
}

// TestSlowReaders: 40 clients each ask for an 8 MiB response (320 MiB in all) from a local
// upstream. 20 of them stop reading after the response head; 20 read it at about 1.3 MiB/s.
// With held_response_budget = 32MiB the bytes held for clients (the sluice_held_response_bytes
// gauge on /metrics) never exceed 32 MiB and the process's RSS grows by less than 160 MiB
// (without a budget every response is held whole: 320 MiB), the slow-but-steady readers get
// their whole responses (streamed once the budget is used up), and min_write_rate (16 KiB/s over
// 2 s windows, a twentieth of the steady readers' pace) cuts the stalled readers off within 12 s
// (about 3 s on an idle machine), long before write_timeout (60 s).
func TestSlowReaders(t *testing.T) {
	const (
		size      = 8 << 20
		budget    = 32 << 20
		stalled   = 20
		steady    = 20
		maxGrowth = 160 << 20
	)
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	// The upstream streams one shared body (it runs in this process: a copy per response would
	// count in the RSS measured here).
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyStream(bytes.NewReader(body), size) })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  write_timeout         = "60s"
  held_response_budget  = "32MiB"
  min_write_rate        = "16KiB"
  min_write_rate_window = "2s"
}
upstream "u" {
  target { address = %q }
  timeouts { request = "60s" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	baseRSS := rssBytes(t)
	slowBefore := counterValue(t, "sluice_client_slow_reader_disconnects_total", "")

	// Watch the budget and the RSS while the clients run.
	done := make(chan struct{})
	var maxHeld, maxGauge, maxRSS atomic.Int64
	var allCut atomic.Int64 // when (ns since start) the gateway had cut off every stalled reader
	start := time.Now()
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if h := gw.Server.HeldResponseBytes(); h > maxHeld.Load() {
				maxHeld.Store(h)
			}
			if r := rssBytes(t); r > maxRSS.Load() {
				maxRSS.Store(r)
			}
			if i%20 == 0 {
				if g := int64(counterValue(t, "sluice_held_response_bytes", "")); g > maxGauge.Load() {
					maxGauge.Store(g)
				}
				if allCut.Load() == 0 && counterValue(t, "sluice_client_slow_reader_disconnects_total", "")-slowBefore >= stalled {
					allCut.Store(int64(time.Since(start)))
				}
			}
		}
	}()

	req := "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
	var wg sync.WaitGroup
	var cut atomic.Int64 // stalled readers the gateway closed
	for i := 0; i < stalled; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := dialSmallWindow(gw.Addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, req)
			// Read the status line, then nothing until the gateway gives up on this client.
			br := bufio.NewReaderSize(c, 1024)
			if line, err := br.ReadString('\n'); !strings.Contains(line, " 200 ") {
				t.Errorf("stalled reader %d: %q %v", i, line, err)
				return
			}
			for wait := time.Now().Add(20 * time.Second); allCut.Load() == 0 && time.Now().Before(wait); {
				time.Sleep(50 * time.Millisecond)
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := io.Copy(io.Discard, br)
			if err == nil && n < size {
				// The connection ended before the body did: cut off. Only the window the client
				// had (16 KiB) and the gateway's socket buffer had got through.
				cut.Add(1)
			} else {
				t.Errorf("stalled reader %d: read %d bytes, err %v; want the connection cut off", i, n, err)
			}
		}(i)
	}
	var complete atomic.Int64
	for i := 0; i < steady; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := dialSmallWindow(gw.Addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(25 * time.Second))
			_, _ = io.WriteString(c, req)
			// The body is checked as it comes, not kept: this process's RSS is measured.
			var h fasthttp.ResponseHeader
			br := bufio.NewReader(&pacedReader{r: c, chunk: 64 << 10, every: 50 * time.Millisecond})
			if err := h.Read(br); err != nil || h.StatusCode() != 200 || h.ContentLength() != size {
				t.Errorf("steady reader %d: status %d, length %d, %v", i, h.StatusCode(), h.ContentLength(), err)
				return
			}
			n, err := io.Copy(&checker{want: body}, io.LimitReader(br, size))
			if n != size || err != nil {
				t.Errorf("steady reader %d: %d of %d bytes, %v", i, n, size, err)
				return
			}
			complete.Add(1)
		}(i)
	}
	wg.Wait()
	close(done)
	sampler.Wait()

	growth := maxRSS.Load() - baseRSS
	t.Logf("held at most %d KiB (gauge %d KiB) of a %d KiB budget; RSS %d MiB → peak %d MiB (+%d MiB); %d of %d stalled readers cut off; %d of %d steady readers complete",
		maxHeld.Load()>>10, maxGauge.Load()>>10, budget>>10, baseRSS>>20, maxRSS.Load()>>20, growth>>20, cut.Load(), stalled, complete.Load(), steady)
	t.Logf("every stalled reader was cut off within %v", time.Duration(allCut.Load()))
	if allCut.Load() == 0 || time.Duration(allCut.Load()) > 12*time.Second {
		t.Errorf("the stalled readers were not all cut off within 12s (min_write_rate_window = 2s): %v", time.Duration(allCut.Load()))
	}

	if maxHeld.Load() > budget || maxGauge.Load() > budget {
		t.Errorf("held %d bytes (gauge %d), over the %d-byte budget", maxHeld.Load(), maxGauge.Load(), budget)
	}
	if maxGauge.Load() == 0 {
		t.Error("sluice_held_response_bytes never showed a held response")
	}
	if growth > maxGrowth && !engine.RaceEnabled {
		t.Errorf("RSS grew by %d MiB, want under %d MiB", growth>>20, maxGrowth>>20)
	}
	if complete.Load() != steady {
		t.Errorf("%d of %d steady readers got their whole response", complete.Load(), steady)
		for _, l := range strings.Split(gw.Logs(), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "slower") {
				t.Log(l)
			}
		}
	}
	if cut.Load() != stalled {
		t.Errorf("%d of %d stalled readers were cut off", cut.Load(), stalled)
	}
	if got := counterValue(t, "sluice_client_slow_reader_disconnects_total", "") - slowBefore; got < stalled {
		t.Errorf("sluice_client_slow_reader_disconnects_total rose by %.0f, want %d", got, stalled)
	}
	if h := gw.Server.HeldResponseBytes(); h != 0 {
		t.Errorf("%d bytes still held after every client is done", h)
	}
}

// checker compares what is written to it with want, from the start.
type checker struct {
	want []byte
	off  int
}

func (c *checker) Write(p []byte) (int, error) {
	if !bytes.Equal(p, c.want[c.off:c.off+len(p)]) {
		return 0, fmt.Errorf("body differs at byte %d", c.off)
	}
	c.off += len(p)
	return len(p), nil
}

// pacedReader reads at most chunk bytes per every.
type pacedReader struct {
	r     io.Reader
	chunk int
	every time.Duration
	left  int
	next  time.Time
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		if d := time.Until(p.next); d > 0 {
			time.Sleep(d)
		}
		p.left, p.next = p.chunk, time.Now().Add(p.every)
	}
	n, err := p.r.Read(b[:min(len(b), p.left)])
	p.left -= n
	return n, err
}

// TestHeldBudgetChunked: chunked responses (of unknown length) are held only while the budget
// has room as they grow (in doubling steps: an 8 MiB body needs 16 MiB, since its end shows only
// on a read past it); past it they stream, and every client still gets its whole body. The
// bodies are larger than the kernel's socket buffers take, so that a held one stays held until
// its client reads it.
func TestHeldBudgetChunked(t *testing.T) {
	const (
		size    = 8 << 20
		clients = 4
		budget  = 20 << 20
	)
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) {
		fc.SetBodyStream(bytes.NewReader(body), -1) // chunked
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  held_response_budget = "20MiB"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	streamedBefore := counterValue(t, "sluice_responses_streamed_over_budget_total", "")
	// Each client asks, then waits before reading: the held responses stay held meanwhile.
	var conns []net.Conn
	for i := 0; i < clients; i++ {
		c, err := dialSmallWindow(gw.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		conns = append(conns, c)
	}
	waitFor(t, func() bool {
		return counterValue(t, "sluice_responses_streamed_over_budget_total", "")-streamedBefore >= clients-1
	})
	if h := gw.Server.HeldResponseBytes(); h > budget {
		t.Errorf("%d bytes held, over the %d-byte budget", h, budget)
	}
	for i, c := range conns {
		var h fasthttp.ResponseHeader
		br := bufio.NewReader(c)
		if err := h.Read(br); err != nil || h.StatusCode() != 200 {
			t.Fatalf("client %d: %d %v", i, h.StatusCode(), err)
		}
		var got []byte
		var err error
		if h.ContentLength() >= 0 {
			got = make([]byte, h.ContentLength())
			_, err = io.ReadFull(br, got)
		} else {
			var resp fasthttp.Response
			h.CopyTo(&resp.Header)
			err = resp.ReadBody(br, 0)
			got = resp.Body()
		}
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("client %d: %d bytes, %v", i, len(got), err)
		}
	}
	waitFor(t, func() bool { return gw.Server.HeldResponseBytes() == 0 })
}
