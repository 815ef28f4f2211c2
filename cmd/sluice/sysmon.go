package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// sysmonGodebug keeps the Go runtime's monitor thread (sysmon) out of its deep sleep.
//
// When every P is idle, sysmon parks on a note, and the next system call of the program wakes it
// (a futex wake-up in the request path) and resets its period to 20 µs, from which it backs off
// only after 50 idle rounds. A gateway under load goes idle between bursts of events thousands of
// times a second, so each burst paid a wake-up and sysmon about fifty 20 µs sleeps, each a
// system call and two context switches, often on the gateway's own core. Profiles put this at
// 3.5 µs per request with every proxy loaded at once, about 7 % of the CPU per request (the floor
// proxy pays the same). The runtime skips the deep sleep when schedtrace is set; with the largest
// period, sysmon then settles at one wake-up every 10 ms, also when idle, and prints a scheduler
// summary to stderr every 24.8 days of machine uptime (once at start on a machine up longer).
const sysmonGodebug = "schedtrace=2147483647"

// keepSysmonAwake re-executes the program with sysmonGodebug added to GODEBUG, which the runtime
// reads only at start. Executing /proc/self/exe runs the very binary that is running even if
// its file was replaced since (an upgrade in progress), but names the process "exe": the new
// process takes its name back in restoreName. A GODEBUG that sets schedtrace already (schedtrace=0 restores the
// runtime's default) is left alone, and so is any platform without /proc/self/exe.
func keepSysmonAwake() {
	godebug := os.Getenv("GODEBUG")
	if runtime.GOOS != "linux" || strings.Contains(godebug, "schedtrace=") {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	env := []string{"GODEBUG=" + godebug + sysmonGodebug}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") { // the first of two would win
			env = append(env, kv)
		}
	}
	// Exec only returns on failure: then the gateway runs with the runtime's default.
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	fmt.Fprintln(os.Stderr, "sluice: running with the runtime's default sysmon:", err)
}

// restoreName gives a process that keepSysmonAwake re-executed the name the kernel gave the
// original one, the base name of the path it was started by (at most 15 bytes), so that ps, ss
// and `pgrep -x sluice` see "sluice" instead of "exe". It writes every thread's comm: the
// threads the runtime starts later inherit the name of the thread that starts them.
func restoreName() {
	if runtime.GOOS != "linux" || !strings.Contains(os.Getenv("GODEBUG"), sysmonGodebug) {
		return
	}
	if comm, err := os.ReadFile("/proc/self/comm"); err != nil || strings.TrimSpace(string(comm)) != "exe" {
		return
	}
	name := filepath.Base(os.Args[0])
	if len(name) > 15 { // TASK_COMM_LEN less the terminating NUL; longer writes are cut anyway
		name = name[:15]
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		// Best effort: a thread that exited meanwhile has no comm to write.
		_ = os.WriteFile("/proc/self/task/"+t.Name()+"/comm", []byte(name), 0)
	}
}

// The name is restored in init, before main starts goroutines that may start threads.
func init() { restoreName() }
