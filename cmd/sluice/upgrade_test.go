package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// upgradeConfig is gatewayConfig with a shutdown_timeout, the time the old process may drain.
func upgradeConfig(listen, admin, up, marker string) string {
	return strings.Replace(gatewayConfig(listen, admin, up, marker),
		fmt.Sprintf("server { listen = %q }", listen),
		fmt.Sprintf("server {\n  listen = %q\n  shutdown_timeout = \"5s\"\n}", listen), 1)
}

// upgradeLoad is a bounded client loop: keep-alive clients and clients that open a connection
// per request, each counting answers by the process (X-Config) that gave them and failures.
type upgradeLoad struct {
	stop     atomic.Bool
	wg       sync.WaitGroup
	total    atomic.Int64
	mu       sync.Mutex
	byMarker map[string]int
	failures []string
}

func startUpgradeLoad(url string, keepAlive, perRequest int) *upgradeLoad {
	l := &upgradeLoad{byMarker: map[string]int{}}
	run := func(c *http.Client) {
		defer l.wg.Done()
		for n := 0; !l.stop.Load() && n < 20000; n++ { // bounded even if stop never comes
			resp, err := c.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			l.total.Add(1)
			l.mu.Lock()
			if err != nil {
				l.failures = append(l.failures, err.Error())
			} else {
				l.byMarker[resp.Header.Get("X-Config")]++
			}
			l.mu.Unlock()
		}
	}
	for i := 0; i < keepAlive; i++ {
		l.wg.Add(1)
		go run(&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}})
	}
	for i := 0; i < perRequest; i++ {
		l.wg.Add(1)
		go run(&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}})
	}
	return l
}

// waitTotal waits until the load has made n more requests than when called.
func (l *upgradeLoad) waitTotal(t *testing.T, n int64) {
	t.Helper()
	target := l.total.Load() + n
	deadline := time.Now().Add(20 * time.Second)
	for l.total.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the load made %d requests, want %d", l.total.Load(), target)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *upgradeLoad) finish() (map[string]int, []string) {
	l.stop.Store(true)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byMarker, l.failures
}

// TestTakeoverUnderLoad is the documented zero-downtime upgrade, twice in a row, under a client
// loop with keep-alive connections and a new connection per request: a new process started with
// --takeover receives the listening sockets (and the admin API's) over the handover socket,
// serves, and the old one drains and exits 0 by itself within shutdown_timeout. Not one request
// fails, and after each upgrade only the new process answers.
func TestTakeoverUnderLoad(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen, adminAddr := freePort(t), freePort(t)
	sock := filepath.Join(t.TempDir(), "handover.sock")
	url := "http://" + listen + "/x"
	cur, _ := startSluice(t, writeConfig(t, upgradeConfig(listen, adminAddr, up, "v1")), "-takeover-socket", sock)

	load := startUpgradeLoad(url, 3, 2)
	load.waitTotal(t, 200)
	for _, next := range []string{"v2", "v3"} {
		start := time.Now()
		newer, logs := startSluice(t, writeConfig(t, upgradeConfig(listen, adminAddr, up, next)), "--takeover", "-takeover-socket", sock)
		if !strings.Contains(logs.String(), "took the listening sockets over") {
			t.Fatalf("%s did not receive the sockets:\n%s", next, logs.String())
		}
		exited := make(chan error, 1)
		go func(c *exec.Cmd) { exited <- c.Wait() }(cur)
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("the process replaced by %s exited with %v, want 0", next, err)
			}
		case <-time.After(5*time.Second + 5*time.Second):
			t.Fatalf("the process replaced by %s did not exit within shutdown_timeout", next)
		}
		t.Logf("%s took over; the old process exited after %v", next, time.Since(start).Round(time.Millisecond))
		// The admin API moved along: the new process answers on the same address.
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			t.Fatalf("admin API after the upgrade to %s: %v", next, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/readyz after the upgrade to %s: %d", next, resp.StatusCode)
		}
		for i := 0; i < 20; i++ {
			if m := configMarker(t, url); m != next {
				t.Fatalf("after the upgrade, request %d answered by %q, want %s", i, m, next)
			}
		}
		load.waitTotal(t, 200)
		cur = newer
	}
	byMarker, failures := load.finish()
	t.Logf("answers by process: %v", byMarker)
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during the upgrades, want 0; first: %v", len(failures), load.total.Load(), failures[:min(5, len(failures))])
	}
	for _, m := range []string{"v1", "v2", "v3"} {
		if byMarker[m] == 0 {
			t.Errorf("no request answered by %s: %v", m, byMarker)
		}
	}
}

// TestHandoverWithoutReadyKeepsServing: a client of the handover socket that is not a sluice
// (a wrong hello), or one that receives the sockets and goes away without saying READY (a new
// process that failed to start), leaves the running gateway serving; the descriptors it got are
// the gateway's listening sockets.
func TestHandoverWithoutReadyKeepsServing(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen, adminAddr := freePort(t), freePort(t)
	sock := filepath.Join(t.TempDir(), "handover.sock")
	url := "http://" + listen + "/x"
	cmd, logs := startSluice(t, writeConfig(t, upgradeConfig(listen, adminAddr, up, "A")), "-takeover-socket", sock)

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	_, _ = io.ReadAll(c) // the gateway hangs up
	c.Close()

	client, lns, adm, admAddr, err := requestHandover(sock)
	if err != nil {
		t.Fatal(err)
	}
	if len(lns) != 1 || lns[listen] == nil || adm == nil || admAddr != adminAddr {
		t.Fatalf("handed %v, admin %v at %q; want %s and the admin API at %s", lns, adm, admAddr, listen, adminAddr)
	}
	if got := lns[listen].Addr().String(); got != listen {
		t.Errorf("the handed socket listens on %s, want %s", got, listen)
	}
	closeListeners(lns)
	_ = adm.Close()
	_ = client.c.Close() // gone without READY

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "did not become ready") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the abandoned handover:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		if m := configMarker(t, url); m != "A" {
			t.Fatalf("request %d answered by %q, want A", i, m)
		}
	}
	if cmd.ProcessState != nil || strings.Contains(logs.String(), "draining") {
		t.Fatalf("the gateway stopped:\n%s", logs.String())
	}
}
