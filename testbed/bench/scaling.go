package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The scaling rows issue 36 asked for: balancer target selection at 3 and 1,000 targets (a Go
// benchmark: picking is nanoseconds, far below what a load test resolves), and memory per idle
// keep-alive connection at a second, larger count of connections (memory.go's connMemory).

// selectRow is one balancer policy's pick cost at 3 and at 1,000 targets (medians of -count
// runs of BenchmarkSelect in filters/balancer).
type selectRow struct {
	Policy   string  `json:"policy"`
	Ns3      float64 `json:"ns_per_pick_3"`
	Ns1000   float64 `json:"ns_per_pick_1000"`
	Allocs3  float64 `json:"allocs_3"`
	Allocs1k float64 `json:"allocs_1000"`
}

// selectLine matches `BenchmarkSelect/POLICY/N[-P]  iters  X ns/op  B B/op  A allocs/op`.
var selectLine = regexp.MustCompile(`^BenchmarkSelect/([a-z0-9_]+)/(\d+)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op\s+\d+ B/op\s+([0-9.]+) allocs/op`)

// measureSelect runs BenchmarkSelect at 3 and 1,000 targets on one core, three times each.
func (h *harness) measureSelect() ([]selectRow, error) {
	cmd := exec.Command("taskset", "-c", "1", "go", "test", "-run", "^$", "-bench", "^BenchmarkSelect$/.*/(3|1000)$",
		"-benchtime", "300ms", "-count", "3", "-benchmem", "-cpu", "1", "./filters/balancer")
	cmd.Dir = h.opt.repo
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("go test -bench BenchmarkSelect: %w: %s", err, firstLines(errb.String()+out.String(), 3))
		}
	case <-time.After(5 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return nil, fmt.Errorf("go test -bench BenchmarkSelect took over 5 minutes")
	}
	return parseSelect(out.String()), nil
}

// parseSelect turns BenchmarkSelect's output into rows, medians over the repeated runs, in the
// order the policies first appear.
func parseSelect(out string) []selectRow {
	type key struct {
		policy string
		n      int
	}
	ns, allocs := map[key][]float64{}, map[key][]float64{}
	var order []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := selectLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		v, _ := strconv.ParseFloat(m[3], 64)
		a, _ := strconv.ParseFloat(m[4], 64)
		k := key{m[1], n}
		if !slices.Contains(order, m[1]) {
			order = append(order, m[1])
		}
		ns[k] = append(ns[k], v)
		allocs[k] = append(allocs[k], a)
	}
	var rows []selectRow
	for _, p := range order {
		r := selectRow{Policy: p, Ns3: median(ns[key{p, 3}]), Ns1000: median(ns[key{p, 1000}]),
			Allocs3: median(allocs[key{p, 3}]), Allocs1k: median(allocs[key{p, 1000}])}
		rows = append(rows, r)
	}
	return rows
}

// selectSection writes the balancer selection rows.
func selectSection(b *strings.Builder, rows []selectRow) {
	if len(rows) == 0 {
		return
	}
	b.WriteString("## Balancer target selection, 3 and 1,000 targets\n\n")
	b.WriteString("`go test -bench BenchmarkSelect ./filters/balancer` on one core, medians of 3 runs of 300 ms: the cost of one pick " +
		"(the policy's choice among available targets, a request's only per-target work). Flat means the 1,000-target pick costs about what the 3-target one does.\n\n")
	b.WriteString("| policy | ns per pick, 3 targets | ns per pick, 1,000 targets | 1,000 ÷ 3 | allocations per pick |\n|---|---:|---:|---:|---:|\n")
	for _, r := range rows {
		ratio := "–"
		if r.Ns3 > 0 {
			ratio = fmt.Sprintf("%.2f", r.Ns1000/r.Ns3)
		}
		fmt.Fprintf(b, "| %s | %.1f | %.1f | %s | %g |\n", r.Policy, r.Ns3, r.Ns1000, ratio, max(r.Allocs3, r.Allocs1k))
	}
	b.WriteString("\n")
}
