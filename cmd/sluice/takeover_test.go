package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// runToExit runs `sluice run` expecting it to stop on its own; it returns its exit code and output.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sluiceBin, append([]string{"run"}, args...)...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sluice run %v did not stop:\n%s", args, out)
	}
	return exitCode(err), string(out)
}

// TestSecondRunOnSameAddressFails: a second gateway on an address another one serves fails with
// a clear error instead of sharing the connections; with --takeover it receives the sockets
// (through the handover socket at its default path) and the first one exits by itself; it can
// itself be taken over later. Every request meanwhile is answered by the gateway that should
// answer it.
func TestSecondRunOnSameAddressFails(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	url := "http://" + listen + "/x"
	first, _ := startSluice(t, writeConfig(t, gatewayConfig(listen, "", up, "first")))

	code, out := runToExit(t, "-c", writeConfig(t, gatewayConfig(listen, "", up, "second")))
	if code != 1 || !strings.Contains(out, "address is in use") || !strings.Contains(out, "--takeover") {
		t.Fatalf("second gateway without --takeover: exit %d; want 1 naming the address in use and --takeover:\n%s", code, out)
	}
	for i := 0; i < 50; i++ {
		if m := configMarker(t, url); m != "first" {
			t.Fatalf("request %d answered by %q, want first (the second gateway must not serve)", i, m)
		}
	}

	// With --takeover the second one gets the sockets; the first drains and exits on its own.
	second, _ := startSluice(t, writeConfig(t, gatewayConfig(listen, "", up, "second")), "--takeover")
	if err := first.Wait(); err != nil {
		t.Fatalf("the gateway taken over exited with %v, want 0", err)
	}
	for i := 0; i < 20; i++ {
		if m := configMarker(t, url); m != "second" {
			t.Fatalf("after the first stopped, request %d answered by %q, want second", i, m)
		}
	}
	// The process that took over can be taken over in turn, and still refuses an accidental third.
	if code, out := runToExit(t, "-c", writeConfig(t, gatewayConfig(listen, "", up, "third"))); code != 1 {
		t.Fatalf("third gateway without --takeover: exit %d, want 1:\n%s", code, out)
	}
	startSluice(t, writeConfig(t, gatewayConfig(listen, "", up, "third")), "--takeover")
	if err := second.Wait(); err != nil {
		t.Fatalf("the second gateway, taken over, exited with %v, want 0", err)
	}
	if m := configMarker(t, url); m != "third" {
		t.Errorf("after the second stopped, answered by %q, want third", m)
	}
}

// TestRunFailsOnAddressOfAnotherProgram: a port held by any other program (without SO_REUSEPORT)
// is an error, with or without --takeover.
func TestRunFailsOnAddressOfAnotherProgram(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeConfig(t, gatewayConfig(ln.Addr().String(), "", "127.0.0.1:9", "x"))
	for _, args := range [][]string{{"-c", cfg}, {"-c", cfg, "--takeover"}} {
		if code, out := runToExit(t, args...); code != 1 || !strings.Contains(out, "address already in use") {
			t.Errorf("sluice run %v on a port another program holds: exit %d, want 1:\n%s", args, code, out)
		}
	}
}

// TestReloadOfServerBlockKeepsAddress: a reload that changes the server block but not its address
// starts a new server on the same address (it takes over from the old one in the same process).
func TestReloadOfServerBlockKeepsAddress(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	url := "http://" + listen + "/x"
	path := writeConfig(t, gatewayConfig(listen, "", up, "A"))
	cmd, logs := startSluice(t, path)
	changed := strings.Replace(gatewayConfig(listen, "", up, "B"), "server {", "server {\n  read_timeout = \"20s\"\n ", 1)
	changed = strings.Replace(changed, " }\nadmin", "\n}\nadmin", 1)
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for configMarker(t, url) != "B" {
		if time.Now().After(deadline) {
			t.Fatalf("the reload did not take effect:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "reload failed") {
		t.Errorf("reload failed:\n%s", logs.String())
	}
}
