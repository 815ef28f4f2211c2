package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRunServesWithTwoProcsOnOneCPU starts `sluice run` allowed a single CPU (the affinity the
// benchmark gives it with taskset) and reads the GOMAXPROCS it serves with from /metrics: 2
// (procs.go), unless GOMAXPROCS is set in the environment.
func TestRunServesWithTwoProcsOnOneCPU(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // restored after the test; the test's own would be inherited
	os.Unsetenv("GOMAXPROCS")
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "2"},
		{[]string{"GOMAXPROCS=1"}, "1"},
		{[]string{"GOMAXPROCS=3"}, "3"},
	} {
		admin := freePort(t)
		cfg := writeConfig(t, fmt.Sprintf(`server { listen = %q }
admin { listen = %q }
upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, freePort(t), admin))
		startOnOneCPU(t, tc.env, cfg) // stopped when the test ends
		if got := gomaxprocsOf(t, admin); got != tc.want {
			t.Errorf("on one CPU with %q: GOMAXPROCS %s, want %s", tc.env, got, tc.want)
		}
	}
}

// startOnOneCPU starts sluice run from a thread allowed only the first CPU it may use: a child
// inherits the affinity of the thread that starts it.
func startOnOneCPU(t *testing.T, env []string, cfg string) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < 1024; cpu++ {
		if all.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.SchedSetaffinity(0, &all); err != nil {
			t.Fatal(err)
		}
	}()
	startSluiceEnv(t, env, cfg)
}

// gomaxprocsOf reads go_sched_gomaxprocs_threads from the admin API's /metrics.
func gomaxprocsOf(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_sched_gomaxprocs_threads "); ok {
			return v
		}
	}
	t.Fatalf("/metrics has no go_sched_gomaxprocs_threads (status %d, %v)", resp.StatusCode, sc.Err())
	return ""
}
