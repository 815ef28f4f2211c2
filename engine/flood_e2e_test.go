package engine_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// raiseFileLimit lifts the test's open-file limit to its hard limit and skips the test when
// that is below need.
func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < need {
		t.Skipf("open-file limit %d is below the %d this test needs", lim.Cur, need)
	}
}

// counterValue reads a counter of the process-wide registry (summed over its labels when label
// is "", else the series with that reason).
func counterValue(t *testing.T, name, reason string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					match = true
				}
			}
			if match {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v
}

// dialFrom connects to addr from the loopback address src (all of 127.0.0.0/8 is loopback on
// Linux), so that one test process can be several clients.
func dialFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.Dial("tcp", addr)
}

// TestConnectionFlood: one attacker address (127.0.0.2) tries to hold 2,000 idle connections
// against max_connections = 1000, and four more (127.0.0.3–6) 256 each, so that together they
// hold more than the server has; half of the connections send one request first and then go
// silent, the rest never send a byte, and each is reopened half a second after the gateway
// closes it. Meanwhile a legitimate client on 127.0.0.1 sends requests on fresh connections and
// on one keep-alive connection. With the default max_conns_per_ip (256), oldest-idle eviction,
// the idle timeout under pressure and first_byte_timeout, at least 99 % of the legitimate
// requests must be answered 200 (before, with no per-address cap, the one address alone took
// every slot and legitimate requests got 503), and no attacker address ever holds more than 256
// connections.
func TestConnectionFlood(t *testing.T) {
	const (
		maxConns   = 1000
		floodFor   = 6 * time.Second
		wantShare  = 0.99
		legitConns = 4 // legitimate clients opening fresh connections
	)
	attackers := map[string]int{"127.0.0.2": 2000, "127.0.0.3": 256, "127.0.0.4": 256, "127.0.0.5": 256, "127.0.0.6": 256}
	// This process holds both ends: at most one socket per attacker goroutine (3,024), the
	// gateway's side of at most max_connections plus the refusals lingering (64), and a few more.
	raiseFileLimit(t, 4500)
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("ok") })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_connections = %d
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, maxConns, up))
	refusedBefore := counterValue(t, "sluice_client_connections_refused_total", "per_ip")
	evictedBefore := counterValue(t, "sluice_client_connections_evicted_total", "")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	stopped := false
	var attackerOpened atomic.Int64
	for src, n := range attackers {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(talk bool) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := dialFrom(src, gw.Addr, time.Second)
					if err != nil {
						time.Sleep(500 * time.Millisecond)
						continue
					}
					attackerOpened.Add(1)
					mu.Lock()
					if stopped {
						mu.Unlock()
						c.Close()
						return
					}
					open = append(open, c)
					mu.Unlock()
					if talk {
						_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
					}
					// Hold it until the gateway closes it (or the test ends), then come back.
					_, _ = io.Copy(io.Discard, c)
					c.Close()
					time.Sleep(500 * time.Millisecond)
				}
			}(i%2 == 0)
		}
	}
	// Let the attackers fill the server before the legitimate client starts.
	waitFor(t, func() bool { return gw.Server.OpenConnections() >= maxConns*9/10 })
	if n := engine.MaxConnsFromOneAddr(gw.Server); n > 256 {
		t.Errorf("an attacker address holds %d connections, want at most max_conns_per_ip = 256", n)
	}

	var served, total atomic.Int64
	var failures sync.Map
	fail := func(why string) {
		v, _ := failures.LoadOrStore(why, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	deadline := time.Now().Add(floodFor)
	var lwg sync.WaitGroup
	for l := 0; l < legitConns; l++ {
		lwg.Add(1)
		go func() { // fresh connection per request
			defer lwg.Done()
			for time.Now().Before(deadline) {
				total.Add(1)
				c, err := dialFrom("127.0.0.1", gw.Addr, 2*time.Second)
				if err != nil {
					fail("dial: " + err.Error())
					continue
				}
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				_, _ = io.WriteString(c, "GET /fresh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				line, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if strings.Contains(line, " 200 ") {
					served.Add(1)
				} else {
					fail(fmt.Sprintf("fresh: %q %v", line, err))
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	lwg.Add(1)
	go func() { // one keep-alive connection, reopened if the gateway closes it
		defer lwg.Done()
		var c net.Conn
		var br *bufio.Reader
		for time.Now().Before(deadline) {
			total.Add(1)
			if c == nil {
				var err error
				if c, err = dialFrom("127.0.0.1", gw.Addr, 2*time.Second); err != nil {
					fail("dial: " + err.Error())
					continue
				}
				br = bufio.NewReader(c)
			}
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			_, _ = io.WriteString(c, "GET /keepalive HTTP/1.1\r\nHost: x\r\n\r\n")
			resp := fasthttp.AcquireResponse()
			err := resp.Read(br)
			if err == nil && resp.StatusCode() == 200 {
				served.Add(1)
			} else {
				fail(fmt.Sprintf("keep-alive: %d %v", resp.StatusCode(), err))
				c.Close()
				c = nil
			}
			fasthttp.ReleaseResponse(resp)
			time.Sleep(20 * time.Millisecond)
		}
		if c != nil {
			c.Close()
		}
	}()
	lwg.Wait()
	if n := engine.MaxConnsFromOneAddr(gw.Server); n > 256 {
		t.Errorf("an attacker address holds %d connections, want at most 256", n)
	}
	close(stop)
	mu.Lock()
	stopped = true
	for _, c := range open {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()

	share := float64(served.Load()) / float64(total.Load())
	t.Logf("legitimate requests served: %d of %d (%.2f%%); attacker connections opened: %d; refused per address: %.0f; idle connections evicted: %.0f",
		served.Load(), total.Load(), 100*share, attackerOpened.Load(),
		counterValue(t, "sluice_client_connections_refused_total", "per_ip")-refusedBefore,
		counterValue(t, "sluice_client_connections_evicted_total", "")-evictedBefore)
	failures.Range(func(k, v any) bool {
		t.Logf("  %d× %s", v.(*atomic.Int64).Load(), k)
		return true
	})
	if total.Load() < 100 {
		t.Errorf("only %d legitimate requests were sent: the test did not run long enough to judge", total.Load())
	}
	if share < wantShare {
		t.Errorf("%.2f%% of legitimate requests served during the flood, want at least %.0f%%", 100*share, 100*wantShare)
	}
	if counterValue(t, "sluice_client_connections_refused_total", "per_ip") == refusedBefore {
		t.Error("no connection was refused for max_conns_per_ip")
	}
	if counterValue(t, "sluice_client_connections_evicted_total", "") == evictedBefore {
		t.Error("no idle connection was evicted")
	}
}

// TestIdleUnderPressureAndFirstByte: a new connection that sends nothing is closed after
// first_byte_timeout; keep-alive connections idle past idle_timeout_under_pressure are closed
// once more than 85 % of max_connections are open, and keep idle_timeout below that.
func TestIdleUnderPressureAndFirstByte(t *testing.T) {
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("ok") })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_connections             = 10
  first_byte_timeout          = "300ms"
  idle_timeout_under_pressure = "300ms"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	// closedWithin reports whether the gateway closes c within d.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		return err == nil // EOF: closed by the gateway; a timeout: still open
	}
	keepAlive := func() net.Conn {
		c, err := net.Dial("tcp", gw.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := resp.Read(bufio.NewReader(c)); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("request: %d %v", resp.StatusCode(), err)
		}
		return c
	}

	// Timed from before the dial: the gateway's first_byte_timeout starts when it accepts, which
	// can come before a client descheduled on a loaded machine reads the clock after its dial.
	start := time.Now()
	silent, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if !closedWithin(silent, 3*time.Second) {
		t.Error("a connection that sent nothing was not closed within 3s (first_byte_timeout = 300ms)")
	} else if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("a silent connection was closed after %v, before first_byte_timeout", took)
	}

	// Below the pressure mark (8 of 10 is not more than 85 %), idle connections stay open.
	var idle []net.Conn
	for i := 0; i < 8; i++ {
		idle = append(idle, keepAlive())
	}
	if closedWithin(idle[0], time.Second) {
		t.Fatal("an idle connection was closed below the pressure mark")
	}
	// A ninth connection puts the server under pressure: the idle ones are closed.
	idle = append(idle, keepAlive())
	for i, c := range idle[:8] {
		if !closedWithin(c, 3*time.Second) {
			t.Errorf("idle connection %d was not closed under pressure", i)
		}
	}
	if n := gw.Server.OpenConnections(); n > 1 {
		t.Errorf("%d connections open after the pressure sweep, want at most 1", n)
	}
}
