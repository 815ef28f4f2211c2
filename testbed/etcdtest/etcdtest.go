// Package etcdtest runs a real etcd (Debian's etcd-server; .ci/run installs it) on loopback inside
// a test, one member with its data in a temporary folder, that a test may stop and start again.
package etcdtest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Etcd is a running etcd member.
type Etcd struct {
	// Endpoint is its client URL (http://127.0.0.1:port).
	Endpoint string
	t        *testing.T
	bin      string
	args     []string
	mu       sync.Mutex
	cmd      *exec.Cmd
	log      *bytes.Buffer
}

// Start runs etcd on random loopback ports; it is stopped when the test ends. The test is skipped
// when etcd is not installed.
func Start(t *testing.T) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/etcd"); serr != nil {
			if os.Getenv("CI") != "" { // CI installs it: a missing etcd there is a failure, not a skip
				t.Fatal("etcd is not installed (Debian: apt-get install etcd-server; .ci/run installs it)")
			}
			t.Skip("etcd is not installed (Debian: apt-get install etcd-server; .ci/run installs it)")
		}
		bin = "/usr/bin/etcd"
	}
	client, peer := "http://"+freeAddr(t), "http://"+freeAddr(t)
	e := &Etcd{Endpoint: client, t: t, bin: bin, args: []string{
		"--name", "test", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test=" + peer, "--initial-cluster-state", "new",
		"--log-level", "warn", "--logger", "zap",
	}}
	e.Restart()
	t.Cleanup(e.Stop)
	return e
}

// Restart starts the member again (on the same ports and data) and waits until it answers /health.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd != nil {
		e.t.Fatal("etcdtest: Restart of a running etcd")
	}
	e.log = &bytes.Buffer{}
	cmd := exec.Command(e.bin, e.args...)
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(e.Endpoint + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), `"true"`) {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd did not become healthy: %v\n%s", err, e.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the member (SIGTERM) and waits for it to exit.
func (e *Etcd) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
	e.cmd = nil
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
