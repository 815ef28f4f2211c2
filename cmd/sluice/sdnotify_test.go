package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// TestSdNotify: under systemd's Type=notify the gateway says READY=1 once it serves (the
// listener answers by then), RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP
// reload, and STOPPING=1 on SIGTERM, as datagrams to $NOTIFY_SOCKET.
func TestSdNotify(t *testing.T) {
	sockPath := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	next := func(what string) string {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification (waiting for %s): %v", what, err)
		}
		return string(buf[:n])
	}

	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	cmd, logs := startSluiceEnv(t, []string{"NOTIFY_SOCKET=" + sockPath}, writeConfig(t, gatewayConfig(listen, "", up, "A")))
	if got := next("READY=1"); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if m := configMarker(t, "http://"+listen+"/x"); m != "A" {
		t.Fatalf("after READY=1 answered by %q, want A", m)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	got := next("RELOADING=1")
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || len(lines[1]) <= len("MONOTONIC_USEC=") {
		t.Fatalf("on SIGHUP %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if got := next("READY=1 after the reload"); got != "READY=1" {
		t.Fatalf("after the reload %q, want READY=1", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := next("STOPPING=1"); got != "STOPPING=1" {
		t.Fatalf("on SIGTERM %q, want STOPPING=1:\n%s", got, logs.String())
	}
}
