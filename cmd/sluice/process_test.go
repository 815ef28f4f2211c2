package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestRunKeepsItsName: the re-executed `sluice run` (sysmon.go) is still called sluice, every
// thread of it, so ps, ss and `pgrep -x sluice` find it.
func TestRunKeepsItsName(t *testing.T) {
	cfg := writeMinimalConfig(t)
	t.Setenv("GODEBUG", "")
	os.Unsetenv("GODEBUG")
	cmd, _ := startSluice(t, cfg)
	pid := cmd.Process.Pid
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), sysmonGodebug) {
		t.Fatal("the serving process was not re-executed; this test checks the name of one that was")
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/comm", pid, task.Name()))
		if err != nil {
			continue // the thread exited
		}
		if got := strings.TrimSpace(string(comm)); got != "sluice" {
			t.Errorf("thread %s is called %q, want sluice", task.Name(), got)
		}
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Log("pgrep not installed; checked /proc only")
		return
	}
	out, _ := exec.Command("pgrep", "-x", "sluice").Output()
	if !strings.Contains("\n"+string(out), "\n"+strconv.Itoa(pid)+"\n") {
		t.Errorf("pgrep -x sluice printed %q, not the gateway's pid %d", out, pid)
	}
}
