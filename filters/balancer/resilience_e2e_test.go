package balancer_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/balancer"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// status returns the state of upstream "u" of the running gateway.
func status(t *testing.T, gw *gatewaytest.Gateway) balancer.Status {
	t.Helper()
	u, ok := gw.Server.Gateway().Upstreams["u"].(engine.UpstreamStatus)
	if !ok {
		t.Fatal("upstream u does not report its status")
	}
	return u.Status().(balancer.Status)
}

func targetStatus(t *testing.T, gw *gatewaytest.Gateway, addr string) balancer.TargetStatus {
	t.Helper()
	for _, ts := range status(t, gw).Targets {
		if ts.Address == addr {
			return ts
		}
	}
	t.Fatalf("no target %s in %+v", addr, status(t, gw))
	return balancer.TargetStatus{}
}

// waitFor polls cond every 5ms until it holds or d passes; it returns how long that took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func get(t *testing.T, cl *fasthttp.Client, url string, headers ...string) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	err := cl.DoTimeout(req, resp, 10*time.Second)
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), err
}

func TestHangingTargetPerTryTimeout(t *testing.T) {
	var probes atomic.Int64
	hang := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/healthz" {
			probes.Add(1)
		}
		time.Sleep(1500 * time.Millisecond)
	})
	ok := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	gw := gatewaytest.Start(t, config("", []string{hang, ok}, `
  retry {
    attempts = 2
    on = ["connect_failure", "reset", "504"]
    per_try_timeout = "150ms"
  }
  health_check {
    interval = "50ms"
    timeout = "400ms"
    unhealthy_threshold = 100
  }`))
	cl := gatewaytest.Client()
	for i := 0; i < 4; i++ {
		start := time.Now()
		code, body, err := get(t, cl, gw.URL+"/x")
		if err != nil || code != 200 || string(body) != "ok" {
			t.Fatalf("GET %d: %d %q %v", i, code, body, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("GET %d took %v: the per-try timeout should have moved it on after 150ms", i, el)
		}
	}
	// A POST reaching the hanging target is not retried (it was sent): 504.
	var saw504 bool
	for i := 0; i < 4 && !saw504; i++ {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(gw.URL + "/x")
		req.Header.SetMethod("POST")
		req.SetBodyString("once")
		if err := cl.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		saw504 = resp.StatusCode() == 504
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	if !saw504 {
		t.Error("no POST got 504 from the hanging target: was a POST retried?")
	}
	// Health probes of the hanging target never pile up: the next one starts only when the
	// previous one timed out (400ms), not every 50ms tick. (The upstream may still be sleeping
	// on a probe the gateway gave up on, so count starts, not overlaps at the upstream.)
	p0 := probes.Load()
	time.Sleep(1200 * time.Millisecond)
	n := probes.Load() - p0
	if n > 4 {
		t.Errorf("%d probes of the hanging target in 1.2s with a 400ms timeout, want at most 4 (one in flight at a time)", n)
	}
	t.Logf("hanging target: %d probes in 1.2s (interval 50ms, timeout 400ms; a pile-up would be ~24)", n)
}

func TestAllTargetsDownIs503Fast(t *testing.T) {
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { time.Sleep(time.Second) }))
	}
	gw := gatewaytest.Start(t, config("", addrs, `
  health_check {
    interval = "100ms"
    timeout = "100ms"
    unhealthy_threshold = 1
  }`))
	waitFor(t, 2*time.Second, "all targets unhealthy", func() bool { return !status(t, gw).Healthy })
	cl := gatewaytest.Client()
	for i := 0; i < 20; i++ {
		start := time.Now()
		code, _, err := get(t, cl, gw.URL+"/x")
		if err != nil || code != 503 {
			t.Fatalf("got %d %v, want 503", code, err)
		}
		if el := time.Since(start); el > 100*time.Millisecond {
			t.Errorf("503 took %v, want it at once", el)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	var attempts atomic.Int64
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
			attempts.Add(1)
			c.SetStatusCode(503)
		}))
	}
	gw := gatewaytest.Start(t, config("", addrs, `
  retry {
    attempts = 2
    on = ["503"]
    budget_percent = 20
  }`))
	cl := gatewaytest.Client()
	const requests = 300
	for i := 0; i < requests; i++ {
		if code, _, err := get(t, cl, gw.URL+"/x"); err != nil || code != 503 {
			t.Fatalf("got %d %v, want the upstream's 503", code, err)
		}
	}
	// Without a budget: 3 attempts per request (900). With 20% (plus a floor of 10 retries per
	// window): at most 300 + 60 + 10.
	got := attempts.Load()
	if got > requests+requests*20/100+10 || got < requests+10 {
		t.Errorf("%d upstream attempts for %d requests, want between %d and %d", got, requests, requests+10, requests+70)
	}
	t.Logf("retry budget: %d attempts for %d requests (no budget would be %d)", got, requests, 3*requests)
}

// fakeResolver answers from a map that tests change.
type fakeResolver struct {
	mu sync.Mutex
	m  map[string][]string
}

func (r *fakeResolver) set(host string, ips ...string) {
	r.mu.Lock()
	r.m[host] = ips
	r.mu.Unlock()
}

func (r *fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ips, ok := r.m[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]string(nil), ips...), nil
}

// loopbackUpstream serves name on 127.0.0.N:port (N > 1 lets several share one port).
func loopbackUpstream(t *testing.T, ip, port, name string) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) { c.SetBodyString(name) }}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
}

func TestDNSReResolution(t *testing.T) {
	// Three loopback addresses on one port, so one name:port can resolve to any of them.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	srvA := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) { c.SetBodyString("a") }}
	go srvA.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srvA.Shutdown() })
	loopbackUpstream(t, "127.0.0.2", port, "b")
	loopbackUpstream(t, "127.0.0.3", port, "c")

	res := &fakeResolver{m: map[string][]string{}}
	res.set("svc.test", "127.0.0.1")
	defer balancer.SetResolver(res)()
	gw := gatewaytest.Start(t, config("", []string{"svc.test:" + port}, `dns_refresh = "50ms"`))
	cl := gatewaytest.Client()
	seen := func(n int) map[string]int {
		m := map[string]int{}
		for i := 0; i < n; i++ {
			code, body, err := get(t, cl, gw.URL+"/x")
			if err != nil || code != 200 {
				t.Fatalf("GET: %d %v", code, err)
			}
			m[string(body)]++
		}
		return m
	}
	if m := seen(6); m["a"] != 6 {
		t.Fatalf("before re-resolution: %v, want all on a", m)
	}
	// The name now has three addresses: traffic balances over all of them.
	res.set("svc.test", "127.0.0.2", "127.0.0.1", "127.0.0.3")
	waitFor(t, 2*time.Second, "three targets after re-resolution", func() bool { return len(status(t, gw).Targets) == 3 })
	if m := seen(30); m["a"] != 10 || m["b"] != 10 || m["c"] != 10 {
		t.Errorf("after re-resolution to three addresses: %v, want 10 each", m)
	}
	// a disappears from the answer: no more traffic to it.
	res.set("svc.test", "127.0.0.2", "127.0.0.3")
	waitFor(t, 2*time.Second, "two targets after re-resolution", func() bool { return len(status(t, gw).Targets) == 2 })
	if m := seen(10); m["a"] != 0 {
		t.Errorf("a removed from DNS still got traffic: %v", m)
	}
	// A failed lookup keeps the last answer.
	res.mu.Lock()
	delete(res.m, "svc.test")
	res.mu.Unlock()
	time.Sleep(150 * time.Millisecond)
	if n := len(status(t, gw).Targets); n != 2 {
		t.Errorf("after a failed lookup: %d targets, want the last answer's 2", n)
	}
}

// testbedBinary builds testbed/cmd/testbed once per test run.
var testbedBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-balancer-testbed")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "testbed")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sluice-gateway/sluice/testbed/cmd/testbed").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building testbed: %v\n%s", err, out)
	}
	return bin, nil
})

// process is a running `testbed upstream`.
type process struct {
	cmd  *exec.Cmd
	addr string
	log  string
}

// startUpstream runs `testbed upstream` on listen (127.0.0.1:0 for a fresh port) and waits for
// its "listening on ADDR" line.
func startUpstream(t *testing.T, name, listen, logFile string) *process {
	t.Helper()
	bin, err := testbedBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "upstream", "-listen", listen, "-name", name, "-log", logFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, log: logFile}
	t.Cleanup(func() { p.kill() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("upstream %s: %v", name, err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	return p
}

func (p *process) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// TestFailoverWithRealProcesses runs a steady load of GETs and POSTs, each with a unique id,
// through three upstream processes; kills one with SIGKILL, then restarts it on the same port.
func TestFailoverWithRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, policy := range []string{"round_robin", "p2c_ewma"} {
		t.Run(policy, func(t *testing.T) { failover(t, policy) })
	}
}

func failover(t *testing.T, policy string) {
	dir := t.TempDir()
	var procs []*process
	var addrs []string
	for _, n := range []string{"a", "b", "c"} {
		p := startUpstream(t, n, "127.0.0.1:0", filepath.Join(dir, n+".log"))
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
	}
	const interval = 300 * time.Millisecond
	gw := gatewaytest.Start(t, config("", addrs, `
  policy = "`+policy+`"
  health_check {
    interval = "300ms"
    timeout = "200ms"
    unhealthy_threshold = 1
    healthy_threshold = 2
  }
  outlier_detection {
    consecutive_failures = 3
    base_ejection_time = "500ms"
    max_ejection_percent = 50
  }
  retry {
    attempts = 2
    on = ["connect_failure", "reset", "502", "503", "504"]
    budget_percent = 50
    per_try_timeout = "1s"
  }`))

	var (
		stop                   atomic.Bool
		gets, posts            atomic.Int64
		getFail, postFail, seq atomic.Int64
		failMu                 sync.Mutex
		failures               []string
		wg                     sync.WaitGroup
		postIDs                sync.Map
	)
	cl := gatewaytest.Client()
	// The cap only bounds a run gone wrong: the load must outlast the restart below, which takes
	// about 2 s, at whatever rate the machine serves (20,000 ran out before it on a fast one).
	const workers, maxRequests = 4, 1_000_000
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for !stop.Load() && seq.Load() < maxRequests {
				id := fmt.Sprintf("r%06d", seq.Add(1))
				req.Reset()
				req.SetRequestURI(gw.URL + "/work")
				req.Header.Set("X-Test-Id", id)
				isPost := seq.Load()%4 == 0
				if isPost {
					req.Header.SetMethod("POST")
					req.SetBodyString("payload " + id)
					postIDs.Store(id, true)
				}
				err := cl.DoTimeout(req, resp, 5*time.Second)
				ok := err == nil && resp.StatusCode() == 200
				if isPost {
					posts.Add(1)
					if !ok {
						postFail.Add(1)
					}
				} else {
					gets.Add(1)
					if !ok {
						getFail.Add(1)
						failMu.Lock()
						failures = append(failures, fmt.Sprintf("GET %s: %d %v", id, resp.StatusCode(), err))
						failMu.Unlock()
					}
				}
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()

	time.Sleep(400 * time.Millisecond)
	victim := procs[1]
	before := gets.Load() + posts.Load()
	killedAt := time.Now()
	victim.kill()
	waitFor(t, 3*time.Second, "killed target taken out", func() bool { return !targetStatus(t, gw, victim.addr).Available })
	ejectedIn := time.Since(killedAt)
	time.Sleep(500 * time.Millisecond)

	// Restart on the same port.
	restarted := startUpstream(t, "b2", victim.addr, filepath.Join(dir, "b2.log"))
	restartedAt := time.Now()
	backIn := waitFor(t, 5*time.Second, "restarted target back in", func() bool { return targetStatus(t, gw, victim.addr).Available })
	waitFor(t, 5*time.Second, "restarted target serving", func() bool {
		if seq.Load() >= maxRequests {
			t.Fatalf("the load ended (%d requests) before the restarted target got a request", maxRequests)
		}
		b, _ := os.ReadFile(restarted.log)
		return bytes.Contains(b, []byte("GET r"))
	})
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	total := gets.Load() + posts.Load()

	// Each POST id executed at most once across all upstream logs.
	executed := map[string]int{}
	for _, f := range []string{"a", "b", "c", "b2"} {
		b, _ := os.ReadFile(filepath.Join(dir, f+".log"))
		for _, line := range strings.Split(string(b), "\n") {
			if id, ok := strings.CutPrefix(line, "POST "); ok {
				executed[id]++
			}
		}
	}
	twice := 0
	for id, n := range executed {
		if n > 1 {
			twice++
			t.Errorf("POST %s executed %d times", id, n)
		}
	}
	if g := getFail.Load(); g != 0 {
		failMu.Lock()
		t.Errorf("%d of %d GETs failed: %v", g, gets.Load(), failures[:min(len(failures), 10)])
		failMu.Unlock()
	}
	if ejectedIn > interval+50*time.Millisecond {
		t.Errorf("the killed target was taken out after %v, want within one health interval (%v)", ejectedIn, interval)
	}
	t.Logf("failover (%s): %d requests (%d GET, %d POST; %d before the kill), GET failures %d, POST failures %d (in flight or on a dead connection at the kill, never retried), POSTs executed twice %d; killed target out after %v, restarted one back after %v (killed at +0, restarted at +%v)",
		policy, total, gets.Load(), posts.Load(), before, getFail.Load(), postFail.Load(), twice, ejectedIn, backIn, restartedAt.Sub(killedAt).Round(time.Millisecond))
}

// unacceptingListener returns the address of a socket that listens with a backlog of zero and
// never accepts: once its queue is full, new connections hang in SYN-SENT, as to a dead host.
func unacceptingListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Skip(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Skip(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue.
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the kernel kept accepting into a zero backlog")
	return ""
}

func TestConnectTimeout(t *testing.T) {
	blackhole := unacceptingListener(t)
	ok := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	t.Run("alone: 502 after the connect timeout", func(t *testing.T) {
		gw := gatewaytest.Start(t, config("", []string{blackhole}, `timeouts {
    connect = "150ms"
    request = "5s"
  }`))
		start := time.Now()
		code, _, err := get(t, gatewaytest.Client(), gw.URL+"/x")
		el := time.Since(start)
		if err != nil || code != 502 {
			t.Errorf("got %d %v, want 502", code, err)
		}
		if el < 100*time.Millisecond || el > time.Second {
			t.Errorf("answered after %v, want about the 150ms connect timeout", el)
		}
	})
	t.Run("with another target: a POST moves on", func(t *testing.T) {
		gw := gatewaytest.Start(t, config("", []string{blackhole, ok}, `timeouts {
    connect = "150ms"
  }`))
		for i := 0; i < 4; i++ {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(gw.URL + "/x")
			req.Header.SetMethod("POST")
			err := gatewaytest.Client().DoTimeout(req, resp, 5*time.Second)
			if err != nil || resp.StatusCode() != 200 {
				t.Errorf("POST %d: %d %v: a connection that never opened sent nothing, so any method retries", i, resp.StatusCode(), err)
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
	})
}

// TestHealthSurvivesHotReload marks a target unhealthy, reloads the configuration (the new one
// keeps that target and adds one), and checks the new gateway still avoids it.
func TestHealthSurvivesHotReload(t *testing.T) {
	var sick atomic.Bool
	sick.Store(true)
	a := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if sick.Load() && string(c.Path()) == "/healthz" {
			c.SetStatusCode(503)
			return
		}
		c.SetBodyString("a")
	})
	b := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("b") })
	cc := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("c") })
	hc := `health_check {
    interval = "1h"
    timeout = "200ms"
    unhealthy_threshold = 1
  }`
	gw := gatewaytest.Start(t, config("", []string{a, b}, hc))
	waitFor(t, 2*time.Second, "a unhealthy", func() bool { return !targetStatus(t, gw, a).Healthy })

	// a recovers; the new configuration probes it once at start, then only hourly. One good
	// probe is below healthy_threshold (2): a stays out unless its state was lost in the reload.
	sick.Store(false)
	next := gatewaytest.Build(t, config("", []string{a, b, cc}, hc), t.TempDir())
	waitFor(t, 2*time.Second, "the new configuration's first probe", func() bool {
		for _, ts := range next.Upstreams["u"].(engine.UpstreamStatus).Status().(balancer.Status).Targets {
			if ts.Address == a {
				return ts.ProbeSuccesses >= 1
			}
		}
		return false
	})
	done := gw.Server.Swap(next)
	<-done
	if targetStatus(t, gw, a).Healthy {
		t.Fatal("a is healthy again right after the reload: its state was lost")
	}
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		_, body, err := get(t, gatewaytest.Client(), gw.URL+"/x")
		if err != nil {
			t.Fatal(err)
		}
		seen[string(body)]++
	}
	if seen["a"] != 0 || seen["b"] == 0 || seen["c"] == 0 {
		t.Errorf("after the reload: %v, want b and c only", seen)
	}
}

func TestUnresolvedNameIsRetriedSoon(t *testing.T) {
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("late") })
	_, port, _ := net.SplitHostPort(up)
	res := &fakeResolver{m: map[string][]string{}}
	defer balancer.SetResolver(res)()
	gw := gatewaytest.Start(t, config("", []string{"late.test:" + port}, `dns_refresh = "1h"`))
	if code, _, _ := get(t, gatewaytest.Client(), gw.URL+"/x"); code != 503 {
		t.Fatalf("before the name resolves: %d, want 503", code)
	}
	res.set("late.test", "127.0.0.1")
	// Not an hour: a name without addresses is looked up again every second.
	waitFor(t, 3*time.Second, "the name resolved", func() bool { return len(status(t, gw).Targets) == 1 })
	if code, body, err := get(t, gatewaytest.Client(), gw.URL+"/x"); code != 200 || string(body) != "late" {
		t.Errorf("after the name resolved: %d %q %v", code, body, err)
	}
}
