package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// watGuest assembles filters/wasm/testdata/NAME.wat into dir and returns the .wasm path.
func watGuest(t *testing.T, dir, name string) string {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Fatal("wat2wasm (wabt) is needed: apt-get install wabt")
	}
	out := filepath.Join(dir, name+".wasm")
	src := filepath.Join("..", "..", "filters", "wasm", "testdata", name+".wat")
	if b, err := exec.Command("wat2wasm", src, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s", name, err, b)
	}
	return out
}

// wasmConfig serves a wasm filter running module (with filter attributes extra) in front of up.
func wasmConfig(listen, admin, up, module, extra, server string) string {
	return fmt.Sprintf(`server {
  listen = %q
%s
}
admin { listen = %q }
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "wasm" {
    module = %q
%s
  }
  balancer { upstream = upstream.u }
}
`, listen, server, admin, up, module, extra)
}

// TestValidateWasmLimits: `sluice validate` exits 1 with the diagnostic when a start function
// never returns (after load_timeout, not forever), and warns about unlimited_time.
func TestValidateWasmLimits(t *testing.T) {
	dir := t.TempDir()
	hang := watGuest(t, dir, "start_loop")
	path := writeConfig(t, wasmConfig("127.0.0.1:0", "", "127.0.0.1:1", hang, `    load_timeout = "500ms"`, ""))
	began := time.Now()
	out, err := exec.Command(sluiceBin, "validate", "-c", path).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "did not finish within load_timeout (500ms)") {
		t.Errorf("validate of a hanging start: exit %d, output:\n%s", code, out)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("validate took %v", took)
	}

	ok := watGuest(t, dir, "hostile")
	path = writeConfig(t, wasmConfig("127.0.0.1:0", "", "127.0.0.1:1", ok, `    unlimited_time = true`, ""))
	out, err = exec.Command(sluiceBin, "validate", "-c", path).CombinedOutput()
	if code := exitCode(err); code != 0 || !strings.Contains(string(out), "gateway.hcl:12:22: warning: Unbounded setting") ||
		!strings.Contains(string(out), "unlimited_time: Calls into this guest have no time limit") {
		t.Errorf("validate with unlimited_time: exit %d, output:\n%s", code, out)
	}
}

// TestReloadRefusedWhenStartHangs: a reload to a module whose start function never returns is
// refused after load_timeout with the diagnostic, the old configuration keeps serving, and later
// reloads (POST /reload and SIGHUP) still work: the reload lock was not held.
func TestReloadRefusedWhenStartHangs(t *testing.T) {
	dir := t.TempDir()
	good, hang := watGuest(t, dir, "hostile"), watGuest(t, dir, "start_loop")
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen, adminAddr := freePort(t), freePort(t)
	path := writeConfig(t, wasmConfig(listen, adminAddr, up, good, "", ""))
	cmd, logs := startSluice(t, path)
	url := "http://" + listen + "/x"
	get := func() int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(); s != 200 {
		t.Fatalf("status %d before the reload", s)
	}
	if err := os.WriteFile(path, []byte(wasmConfig(listen, adminAddr, up, hang, `    load_timeout = "500ms"`, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // twice: the first refusal must not leave the lock held
		began := time.Now()
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Post("http://"+adminAddr+"/reload", "", nil)
		if err != nil {
			t.Fatalf("reload %d: %v (after %v)", i, err, time.Since(began))
		}
		var body struct {
			Reloaded    bool   `json:"reloaded"`
			Diagnostics string `json:"diagnostics"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 422 || body.Reloaded || !strings.Contains(body.Diagnostics, "did not finish within load_timeout (500ms)") {
			t.Errorf("reload %d: status %d, %+v; want 422 with the load_timeout diagnostic", i, resp.StatusCode, body)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("reload %d took %v", i, took)
		}
		if s := get(); s != 200 {
			t.Errorf("status %d after the refused reload, want 200 from the old configuration", s)
		}
	}
	// SIGHUP with a good configuration goes through.
	if err := os.WriteFile(path, []byte(wasmConfig(listen, adminAddr, up, good, "", "")+`pipeline "marker" {
  match { path_prefix = "/marker" }
  filter "headers" {
    response_set = { "X-Config" = "after" }
  }
  balancer { upstream = upstream.u }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for configMarker(t, "http://"+listen+"/marker") != "after" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP after refused reloads did not reload:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdownEndsLoopingGuests: SIGTERM ends the process within shutdown_timeout while guests
// loop, with the default timeout and with unlimited_time.
func TestShutdownEndsLoopingGuests(t *testing.T) {
	for _, extra := range []string{"", "    unlimited_time = true"} {
		t.Run(fmt.Sprintf("unlimited=%v", extra != ""), func(t *testing.T) {
			dir := t.TempDir()
			up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
			listen := freePort(t)
			path := writeConfig(t, wasmConfig(listen, "", up, watGuest(t, dir, "hostile"), extra, `  shutdown_timeout = "1s"`))
			cmd, logs := startSluice(t, path)
			// Two looping requests: one per core of a 2-core machine.
			for range 2 {
				go func() {
					req, _ := http.NewRequest("GET", "http://"+listen+"/x", nil)
					req.Header.Set("x-mode", "l")
					if resp, err := http.DefaultClient.Do(req); err == nil {
						resp.Body.Close()
					}
				}()
			}
			time.Sleep(300 * time.Millisecond)
			began := time.Now()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-exited:
				t.Logf("exited %v after SIGTERM", time.Since(began))
			case <-time.After(4 * time.Second):
				t.Fatalf("still running 4s after SIGTERM (shutdown_timeout 1s):\n%s", logs.String())
			}
			if took := time.Since(began); took > 2500*time.Millisecond {
				t.Errorf("the process took %v to exit, want about shutdown_timeout (1s)", took)
			}
		})
	}
}

// TestHostileGuestMemory: eight unbounded recursions and a guest writing a 1 GiB body, at once
// and three times each, keep the process's peak RSS (VmHWM) under 450 MiB (measured 220–375 MiB).
// Measured apart: the eight recursions add about 25 MiB (max_call_depth frames each); the body,
// stopped at the 64MiB default of max_response_bytes, about 200–300 MiB: its buffer doubles (127
// MiB allocated in all), and the Go runtime returns freed memory to the system only gradually.
func TestHostileGuestMemory(t *testing.T) {
	dir := t.TempDir()
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	// The guests must be stopped by max_call_depth and the body limit (500), not by the 1s
	// default timeout (503), which on a loaded machine the nine at once can reach first.
	path := writeConfig(t, wasmConfig(listen, "", up, watGuest(t, dir, "hostile"), "    breaker_failures = 1000\n    timeout = \"30s\"", ""))
	cmd, _ := startSluice(t, path)
	before := vmHWM(t, cmd.Process.Pid)
	var wg sync.WaitGroup
	nr, nb := 8, 1
	statuses := make(chan int, 3*(nr+nb))
	for i := range nr + nb {
		mode := "r"
		if i >= nr {
			mode = "b"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				req, _ := http.NewRequest("GET", "http://"+listen+"/x", nil)
				req.Header.Set("x-mode", mode)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 500 {
			t.Errorf("a hostile request got %d, want 500", s)
		}
	}
	peak := vmHWM(t, cmd.Process.Pid)
	t.Logf("peak RSS %d MiB (%d MiB before the hostile requests)", peak>>20, before>>20)
	if peak > 450<<20 {
		t.Errorf("peak RSS %d MiB, want under 450 MiB", peak>>20)
	}
}

// vmHWM reads the peak resident set size of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
