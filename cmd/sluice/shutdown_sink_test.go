package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestShutdownWithBlockedAccessLog: the access log goes to stdout, a pipe nobody reads. Once the
// pipe is full the log's writer blocks; SIGTERM must still end the process within the shutdown
// deadline, cleanly, and the log must say how many records were lost.
func TestShutdownWithBlockedAccessLog(t *testing.T) {
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	listen := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`server {
  listen           = %q
  shutdown_timeout = "1s"
}
admin { listen = "" }
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "otel_log" {
    output = "stdout"
  }
  balancer { upstream = upstream.u }
}
`, listen, up))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close() // open and never read: writes block once the pipe's buffer is full
	cmd := exec.Command(sluiceBin, "run", "-c", cfg)
	cmd.Stdout = pw
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var mu sync.Mutex
	var logs strings.Builder
	ready, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !once && strings.Contains(sc.Text(), "msg=serving") {
				once = true
				close(ready)
			}
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case <-ready:
	case <-done:
		t.Fatal("sluice exited before serving")
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not start")
	}

	// About 300 bytes a record: 2,000 requests overfill a 64 KiB pipe several times over.
	client := &fasthttp.Client{}
	for i := 0; i < 2000; i++ {
		status, _, err := client.Get(nil, "http://"+listen+"/x")
		if err != nil || status != 200 {
			t.Fatalf("request %d: %d %v", i, status, err)
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { <-done; errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		took := time.Since(start)
		mu.Lock()
		out := logs.String()
		mu.Unlock()
		if err != nil {
			t.Errorf("sluice exited with %v after %v, want 0\n%s", err, took, out)
		}
		// shutdown_timeout is 1s; the fallback exit would come at 6s.
		if took > 4*time.Second {
			t.Errorf("shutdown took %v with shutdown_timeout 1s", took)
		}
		if !strings.Contains(out, "access log output blocked at shutdown") || !strings.Contains(out, "lost=") {
			t.Errorf("no report of the lost records:\n%s", out)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sluice did not exit after SIGTERM")
	}
	if _, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		t.Error("the listener still accepts after shutdown")
	}
}
