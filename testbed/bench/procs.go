package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of the times in /proc/PID/stat and /proc/stat (100 on every
// Linux architecture Go supports).
const clockTick = 100

// procTimes is the user+system CPU time of a process tree, in clock ticks.
type procTimes struct {
	ticks int64
	procs int // processes in the tree
}

// statFields returns the fields of /proc/PID/stat after the command name (which may hold spaces
// and parentheses, so split after the last ')'): index 0 is the state (field 3 of proc(5)).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// cpuTicks is utime+stime (fields 14 and 15 of proc(5)) of one process: every thread's time,
// including threads that have exited.
func cpuTicks(pid int) (int64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return u + s, nil
}

// descendants returns pid and every process whose parent chain leads to it (nginx's workers,
// for instance).
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(p)
		if err != nil || len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	out := []int{pid}
	for p := range parent {
		for q, n := p, 0; q > 1 && n < 64; q, n = parent[q], n+1 {
			if parent[q] == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// treeTimes sums cpuTicks over a process tree.
func treeTimes(pid int) procTimes {
	var t procTimes
	for _, p := range descendants(pid) {
		if n, err := cpuTicks(p); err == nil {
			t.ticks += n
			t.procs++
		}
	}
	return t
}

// treeRSS sums VmRSS (KiB) over a process tree.
func treeRSS(pid int) int64 {
	var total int64
	for _, p := range descendants(pid) {
		total += statusKiB(p, "VmRSS:")
	}
	return total
}

// statusKiB reads one "Name:   N kB" line of /proc/PID/status.
func statusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line[len(field):])
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// cpuStat is one "cpuN" line of /proc/stat, in clock ticks.
type cpuStat struct {
	busy, idle int64
	steal      int64
}

// readProcStat returns the per-CPU lines of /proc/stat, keyed by CPU number (-1 for the total).
func readProcStat() (map[int]cpuStat, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (map[int]cpuStat, error) {
	out := map[int]cpuStat{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		n := -1
		if f[0] != "cpu" {
			v, err := strconv.Atoi(f[0][3:])
			if err != nil {
				continue
			}
			n = v
		}
		var v [10]int64
		for i := 1; i < len(f) && i <= 10; i++ {
			v[i-1], _ = strconv.ParseInt(f[i], 10, 64)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice; guest time is
		// already inside user.
		out[n] = cpuStat{
			busy:  v[0] + v[1] + v[2] + v[5] + v[6],
			idle:  v[3] + v[4],
			steal: v[7],
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("/proc/stat: no cpu lines")
	}
	return out, nil
}

// pinned is a process started under taskset on the given CPU list.
type pinned struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has ended
}

// startPinned starts argv on cpus ("1", "0"), with its output in dir/name.log.
func startPinned(dir, name, cpus string, env []string, argv ...string) (*pinned, error) {
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	args := append([]string{"-c", cpus}, argv...)
	cmd := exec.Command("taskset", args...) // taskset execs argv: the PID is the program's
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	// Own process group, so that a stop reaches nginx's workers and nothing leaks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &pinned{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *pinned) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *pinned) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after a grace period.
func (p *pinned) stop() {
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	p.log.Close()
}

// logTail returns the last lines of the process's output, for error messages.
func (p *pinned) logTail() string {
	b, _ := os.ReadFile(p.log.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// treeSyscalls sums the read- and write-class system calls (syscr + syscw of /proc/PID/io) of a
// process tree: a proxy that batches well makes few per request.
func treeSyscalls(pid int) int64 {
	var total int64
	for _, p := range descendants(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "syscr" || k == "syscw") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				total += n
			}
		}
	}
	return total
}

func selfPID() int { return os.Getpid() }

// kthreadTicks sums utime+stime of the kernel's own threads (ksoftirqd, kworker, …): work they do
// for the test's sockets is not other load.
func kthreadTicks() int64 {
	const pfKthread = 0x00200000 // PF_KTHREAD in the flags field (9) of /proc/PID/stat
	var total int64
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(p)
		if err != nil || len(f) < 13 {
			continue
		}
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		if flags&pfKthread == 0 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + st
	}
	return total
}
