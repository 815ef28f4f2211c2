package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(bytes.TrimSpace(b), v) }

// summary is a case's medians over its clean runs (over all runs when none was clean).
type summary struct {
	RPS, P50, P99, CPU, UpstreamCPU, Syscalls float64
	Clean, Total                              int
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(c *benchCase) summary {
	var clean []runRecord
	for _, r := range c.Runs {
		if r.Clean {
			clean = append(clean, r)
		}
	}
	s := summary{Clean: len(clean), Total: len(c.Runs)}
	use := clean
	if len(use) == 0 {
		use = c.Runs
	}
	var rps, p50, p99, cpu, ups, sys []float64
	for _, r := range use {
		rps = append(rps, r.RPS)
		p50 = append(p50, r.P50US)
		p99 = append(p99, r.P99US)
		cpu = append(cpu, r.ProxyCPUUS)
		ups = append(ups, r.UpstreamCPUUS)
		sys = append(sys, r.Syscalls)
	}
	s.Syscalls = median(sys)
	s.RPS, s.P50, s.P99, s.CPU, s.UpstreamCPU = median(rps), median(p50), median(p99), median(cpu), median(ups)
	return s
}

// nginxRef returns the nginx case a case is compared with: the same gzip level in the
// compression group, else plain nginx.
func nginxRef(cases []*benchCase, label string) *benchCase {
	switch {
	case strings.HasSuffix(label, "gzip 1"):
		return find(cases, "nginx gzip 1")
	case strings.HasSuffix(label, "gzip 6"):
		return find(cases, "nginx gzip 6")
	}
	if c := find(cases, "nginx"); c != nil {
		return c
	}
	return find(cases, "nginx gzip off")
}

func find(cases []*benchCase, label string) *benchCase {
	for _, c := range cases {
		if c.Label == label && len(c.Runs) > 0 {
			return c
		}
	}
	return nil
}

// pairedRatio is the median over rounds of a's metric divided by b's in the same round, or 0
// when no round has both. The configurations of a round run back to back, so a round's ratio is
// measured under the same conditions, while this machine's speed drifts between rounds (by up to
// half under other tenants' load): the median of per-round ratios cancels that drift, where a
// ratio of medians taken over different rounds does not. Rounds where both runs were clean count;
// all rounds count when fewer than two were.
func pairedRatio(a, b *benchCase, metric func(runRecord) float64) float64 {
	q, _ := pairedRatioClean(a, b, metric)
	return q
}

// pairedRatioClean is pairedRatio, and how many rounds had both runs clean.
func pairedRatioClean(a, b *benchCase, metric func(runRecord) float64) (float64, int) {
	if a == nil || b == nil {
		return 0, 0
	}
	byRound := map[int]runRecord{}
	for _, r := range b.Runs {
		byRound[r.Round] = r
	}
	var clean, all []float64
	for _, r := range a.Runs {
		o, ok := byRound[r.Round]
		if !ok || metric(o) == 0 || metric(r) == 0 {
			continue
		}
		q := metric(r) / metric(o)
		all = append(all, q)
		if r.Clean && o.Clean {
			clean = append(clean, q)
		}
	}
	if len(clean) >= 2 {
		return median(clean), len(clean)
	}
	return median(all), len(clean)
}

func runRPS(r runRecord) float64 { return r.RPS }
func runCPU(r runRecord) float64 { return r.ProxyCPUUS }

// pairedString formats pairedRatio for the tables.
func pairedString(a, b *benchCase, metric func(runRecord) float64) string {
	if q := pairedRatio(a, b, metric); q != 0 {
		return fmt.Sprintf("%.2f", q)
	}
	return "–"
}

// groupTable renders one group as a Markdown table.
func groupTable(b *strings.Builder, cases []*benchCase) {
	// The reference: the fasthttp floor, or in the HTTP/2 groups Go's bare HTTP/2 server.
	floor, ref := find(cases, "floor"), "floor"
	if c := find(cases, "go h2 ceiling"); floor == nil && c != nil {
		floor, ref = c, "ceiling"
	}
	if c := find(cases, "grpc direct"); floor == nil && c != nil {
		floor, ref = c, "direct"
	}
	p50 := "p50 µs"
	if len(cases) > 0 && (cases[0].Tool == toolH2load || cases[0].Tool == toolH2GRPC) {
		p50 = "mean µs" // h2load reports no percentiles
	}
	fmt.Fprintf(b, "| configuration | RPS | ÷ %[1]s | ÷ nginx | %[2]s | p99 µs | proxy CPU µs/req | CPU ÷ %[1]s | CPU ÷ nginx | proxy syscalls/req | upstream CPU µs/req | clean runs |\n", ref, p50)
	fmt.Fprintf(b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range cases {
		if len(c.Runs) == 0 {
			fmt.Fprintf(b, "| %s | skipped: %s ||||||||||\n", c.Label, strings.ReplaceAll(firstLines(c.Skipped, 1), "|", "/"))
			continue
		}
		s := summarize(c)
		ng := nginxRef(cases, c.Label)
		fmt.Fprintf(b, "| %s | %.0f | %s | %s | %.0f | %s | %.1f | %s | %s | %.1f | %.1f | %d/%d |\n",
			c.Label, s.RPS, pairedString(c, floor, runRPS), pairedString(c, ng, runRPS), s.P50, orDash(s.P99), s.CPU,
			pairedString(c, floor, runCPU), pairedString(c, ng, runCPU), s.Syscalls, s.UpstreamCPU, s.Clean, s.Total)
	}
}

// orDash formats a latency, or "–" when the load generator gave none.
func orDash(us float64) string {
	if us == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", us)
}

// budgets are the per-filter budgets (CPU per request over the empty pipeline, µs); the
// Wasm budget is for a filter making 5 host calls, checked on both Wasm guests. A row's budget
// covers its filter's timed phases too (issue 33: 50 ns a phase); for the few-instruction
// filters that is most of it: the gated `fault` is a header test (routing's 0.1) and one timed
// phase (RATIONALE.md, "Why is the gated fault filter's budget 0.15 µs…").
var budgets = map[string]float64{"jwt": 1, "rate_limit": 0.5, "wasm": 1.5, "wasm-wat": 1.5, "wasm-proxy": 1.5, "otel_log": 2, "tracing": 1.5, "rewrite": 0.5, "fault": 0.15, "routing": 0.1,
	"split": 0.3, "cors": 1, "ip_filter": 0.3, "key_auth": 0.5, "basic_auth": 0.5, "forward_auth": 0.5, "stage timings": 0.25}

// filterNames describes the filter-cost rows whose part name says too little.
var filterNames = map[string]string{
	controlLabel:           "none (control: a second empty pipeline)",
	"sluice quickstart":    "quickstart (all parts)",
	"sluice +wasm":         "wasm: the Go SDK's apikey (4 host calls)",
	"sluice +wasm+timeout": "wasm+timeout: the same with timeout = 5ms",
	"sluice +wasm-wat":     "wasm: a WAT guest (5 host calls, no other code)",
	"sluice +wasm-proxy":   "wasm: its proxy-wasm twin (the same 5 host calls through proxy-wasm)",
	"sluice +rewrite":      "rewrite: one-group regex",
	"sluice +fault":        "fault: gated on a header not sent (a header test and one timed phase)",
	"sluice +cors":         "cors: an actual request from an allowed origin (a pattern)",
	"sluice +ip_filter":    "ip_filter: 100,000 deny prefixes, the client allowed",
	"sluice +key_auth":     "key_auth: a header key, hashed and looked up",

	"sluice +routing": "routing on one header predicate (a second pipeline with header \"x-canary\")",

	"sluice +split": "balancer split 95/5, sticky cookie, route_header",

	"sluice +basic_auth":   "basic_auth: a cached credential",
	"sluice +forward_auth": "forward_auth: a cached decision",

	"sluice +stage timings": "stage timings: 5 phases (2 headers filters, the balancer), over the same with stage_timings = false (budget 5 × 50 ns)",
}

func (h *harness) writeReport() error {
	var b strings.Builder
	mode := h.opt.mode
	fmt.Fprintf(&b, "# Sluice load benchmark (%s mode)\n\n", mode)
	fmt.Fprintf(&b, "Generated by `testbed/bench/run.sh %s` on %s. ", mode, h.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "wrk -t1 with keep-alive on core 0; the proxy under test and the upstream (fasthttp, %s) on core 1; "+
		"configurations interleaved run by run (%d runs of %s after a %s warm-up each); medians over the runs not disturbed "+
		"by other load (processes outside the test using less than %.0f%% of a core over both cores, from /proc/stat minus the test's processes, kernel threads and softirq). "+
		"Proxy CPU is the user+system time of the proxy's process tree (/proc/PID/stat) divided by the completed requests. "+
		"The ÷ columns are medians of per-round ratios (each round runs every configuration back to back, so a round's ratio "+
		"is taken under one set of conditions while the machine's speed drifts between rounds); they need not equal the "+
		"ratio of the medians beside them. Compare ratios within this table, not absolute numbers across runs.\n\n",
		"64 B text/plain or 16 KiB JSON", h.opt.runs, h.opt.dur, h.opt.warm, 100*h.opt.otherMax)
	if h.opt.pairRuns != h.opt.runs && slices.ContainsFunc(h.cases, func(c *benchCase) bool { return c.Group == pairedGroup }) {
		fmt.Fprintf(&b, "The filter-cost group runs %d rounds instead of %d: its rows are differences of a few tenths of a microsecond, and one round's difference moves by about 0.2 µs.\n\n", h.opt.pairRuns, h.opt.runs)
	}
	b.WriteString(h2tlsIntro(h.cases))

	groups := h.groups()
	// Include skipped cases in their group's table too.
	byGroup := map[string][]*benchCase{}
	var order []string
	for _, c := range h.cases {
		if _, ok := byGroup[c.Group]; !ok {
			order = append(order, c.Group)
		}
		byGroup[c.Group] = append(byGroup[c.Group], c)
	}
	_ = groups
	for _, g := range order {
		if g == pairedGroup {
			continue // in the filter costs section
		}
		fmt.Fprintf(&b, "## %s\n\n", g)
		groupTable(&b, byGroup[g])
		b.WriteString("\n")
	}

	h.targetsSection(&b, byGroup)
	h2tlsTargets(&b, byGroup)
	h.budgetSection(&b, byGroup)
	h.rateSection(&b)
	h.memorySection(&b)
	selectSection(&b, h.selects)

	if len(h.notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range h.notes {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(n, "\n", " "))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Machine\n\n")
	keys := make([]string, 0, len(h.sysinfo))
	for k := range h.sysinfo {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s: %s\n", k, h.sysinfo[k])
	}

	if err := os.MkdirAll(h.opt.out, 0o755); err != nil {
		return err
	}
	base := filepath.Join(h.opt.out, "bench-"+mode)
	if err := os.WriteFile(base+".md", []byte(b.String()), 0o644); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(map[string]any{
		"mode": mode, "started": h.started.UTC(), "runs": h.opt.runs, "pair_runs": h.opt.pairRuns, "duration": h.opt.dur.String(),
		"warmup": h.opt.warm.String(), "other_max": h.opt.otherMax, "conns": h.opt.conns, "cases": h.cases, "memory": h.memory, "notes": h.notes, "system": h.sysinfo,
		"balancer_select": h.selects,
	}, "", "  ")
	if err != nil {
		return err
	}
	if !h.fromJSON {
		if err := os.WriteFile(base+".json", raw, 0o644); err != nil {
			return err
		}
	}
	var panels []panel
	for _, g := range order {
		if g == pairedGroup {
			continue
		}
		var p panel
		p.title = g
		floor := find(byGroup[g], "floor")
		for _, c := range byGroup[g] {
			if len(c.Runs) == 0 {
				continue
			}
			s := summarize(c)
			br := bar{label: c.Label, kind: c.Kind, rps: s.RPS, cpu: s.CPU}
			if c.Kind == "sluice" {
				var rn, cn []string
				if floor != nil {
					rn = append(rn, pairedString(c, floor, runRPS)+"× floor")
					cn = append(cn, pairedString(c, floor, runCPU)+"× floor")
				}
				if ng := nginxRef(byGroup[g], c.Label); ng != nil {
					rn = append(rn, pairedString(c, ng, runRPS)+"× nginx")
					cn = append(cn, pairedString(c, ng, runCPU)+"× nginx")
				}
				if len(rn) > 0 {
					br.rpsNote = strings.Join(rn, ", ")
					br.cpuNote = strings.Join(cn, ", ")
				}
			}
			p.bars = append(p.bars, br)
		}
		if len(p.bars) > 0 {
			panels = append(panels, p)
		}
	}
	if err := os.WriteFile(base+".svg", chartSVG(fmt.Sprintf("Sluice vs nginx, HAProxy and the fasthttp floor (%s mode, medians)", mode), panels), 0o644); err != nil {
		return err
	}
	fmt.Println(b.String())
	h.logf("wrote %s.md, .svg and .json", base)
	return nil
}

func (h *harness) targetsSection(b *strings.Builder, byGroup map[string][]*benchCase) {
	var lines []string
	for _, n := range h.opt.conns {
		cases := byGroup[fmt.Sprintf("%d conns, 64 B", n)]
		floor, empty, nginx := find(cases, "floor"), find(cases, "sluice empty"), find(cases, "nginx")
		if floor == nil || empty == nil {
			continue
		}
		// A verdict drawn from disturbed rounds says so: on this machine they swing either way.
		verdict := func(ok bool, clean int) string {
			v := "**not met**"
			if ok {
				v = "**met**"
			}
			switch clean {
			case 0:
				v += " (no round undisturbed for both: not conclusive)"
			case 1:
				v += " (only 1 round undisturbed for both: not conclusive)"
			}
			return v
		}
		rf, c1 := pairedRatioClean(empty, floor, runRPS)
		cf, c2 := pairedRatioClean(empty, floor, runCPU)
		lines = append(lines,
			fmt.Sprintf("| %d | empty pipeline RPS ≥ 0.95 × floor | %.2f | %s |", n, rf, verdict(rf >= 0.95, c1)),
			fmt.Sprintf("| %d | empty pipeline CPU/req ≤ 1.05 × floor | %.2f | %s |", n, cf, verdict(cf <= 1.05, c2)))
		if nginx != nil {
			rn, c3 := pairedRatioClean(empty, nginx, runRPS)
			cn, c4 := pairedRatioClean(empty, nginx, runCPU)
			lines = append(lines,
				fmt.Sprintf("| %d | stretch: empty pipeline RPS ≥ 1.0 × nginx | %.2f | %s |", n, rn, verdict(rn >= 1, c3)),
				fmt.Sprintf("| %d | stretch: empty pipeline CPU/req ≤ nginx | %.2f | %s |", n, cn, verdict(cn <= 1, c4)))
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("## Targets of issue 11\n\n| conns | target | ratio | |\n|---|---|---:|---|\n")
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n\n")
}

// pairCost is what a case loaded at once with its base cost over the base.
type pairCost struct {
	base, cpu     float64 // medians of CPU per request, µs
	over, lo, hi  float64 // median, least and most of the per-run differences, µs
	rps           float64 // median of the per-run RPS ratios
	rounds, clean int
}

// pairedCost takes the runs where both proxies were undisturbed when there are two or more, else
// all runs.
func pairedCost(c *benchCase) pairCost {
	var all, clean []runRecord
	for _, r := range c.Runs {
		if r.BaseCPUUS <= 0 || r.BaseRPS <= 0 {
			continue
		}
		all = append(all, r)
		if r.Clean {
			clean = append(clean, r)
		}
	}
	use := all
	if len(clean) >= 2 {
		use = clean
	}
	pc := pairCost{rounds: len(use), clean: len(clean)}
	if len(use) == 0 {
		return pc
	}
	var base, cpu, diff, rps []float64
	for _, r := range use {
		base = append(base, r.BaseCPUUS)
		cpu = append(cpu, r.ProxyCPUUS)
		diff = append(diff, r.ProxyCPUUS-r.BaseCPUUS)
		rps = append(rps, r.RPS/r.BaseRPS)
	}
	pc.base, pc.cpu, pc.over, pc.rps = median(base), median(cpu), median(diff), median(rps)
	pc.lo, pc.hi = slices.Min(diff), slices.Max(diff)
	return pc
}

func (h *harness) budgetSection(b *strings.Builder, byGroup map[string][]*benchCase) {
	cases := byGroup[pairedGroup]
	if len(cases) == 0 {
		return
	}
	var rows []string
	for _, c := range cases {
		part := strings.TrimPrefix(c.Label, "sluice +")
		name := part
		if n, ok := filterNames[c.Label]; ok {
			name = n
		}
		if len(c.Runs) == 0 {
			rows = append(rows, fmt.Sprintf("| %s | skipped: %s ||||||||", name, strings.ReplaceAll(firstLines(c.Skipped, 1), "|", "/")))
			continue
		}
		pc := pairedCost(c)
		budget, verdict := "", ""
		if bud, ok := budgets[part]; ok {
			budget = fmt.Sprintf("%g", bud) // 0.25, not "0.2"
			verdict = "met"
			if pc.over > bud {
				verdict = "not met"
			}
			if pc.clean < 2 {
				verdict += " (fewer than 2 undisturbed runs: not conclusive)"
			}
		}
		rows = append(rows, fmt.Sprintf("| %s | %.1f | %.1f | %+.2f | %+.2f … %+.2f | %.2f | %d | %s | %s |",
			name, pc.base, pc.cpu, pc.over, pc.lo, pc.hi, pc.rps, pc.rounds, budget, verdict))
	}
	b.WriteString("## Filter costs (64 conns, 64 B, CPU per request over the empty pipeline)\n\n")
	b.WriteString("Each configuration runs loaded at once with the empty pipeline, which gets the same requests (a bearer token, an API " +
		"key): two proxies on core 1, each with its own wrk on core 0, so that the machine's drift between runs, which spreads the empty pipeline's CPU per request by several " +
		"microseconds from run to run, weighs on both alike; both start afresh for each run, so that neither keeps a lucky " +
		"or unlucky memory layout through all its runs. \"Over empty\" is the median over runs of the configuration's CPU " +
		"per request minus the empty pipeline's in the same run (runs where no other load disturbed the machine, when there " +
		"are two or more); the range is over those runs. Both proxies share the core and its caches, so both run a little " +
		"slower than alone, and a filter's cost includes the cache misses its memory causes under load, which its Go " +
		"benchmark in a tight loop does not see. The control row, a second empty pipeline, is what the method reads where " +
		"nothing differs.")
	b.WriteString(machineSpeed(byGroup["64 conns, 64 B"]))
	b.WriteString("\n\n| filter | empty µs/req | with it µs/req | over empty µs | range µs | RPS ÷ empty | runs | budget µs | |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n\n")
}

// refNginxCPUUS is nginx's CPU per request at 64 connections on the machine where issue 11 set the
// per-filter budgets (../shared/bench).
const refNginxCPUUS = 15.9

// machineSpeed says how fast the machine ran, by nginx's CPU per request at 64 connections against
// the reference: a filter's cost grows faster than the request's on a slow, contended host (its
// cost is mostly cache misses), so a budget verdict from a slow run is an upper bound.
func machineSpeed(cases []*benchCase) string {
	for _, c := range cases {
		if c.Label != "nginx" || len(c.Runs) == 0 {
			continue
		}
		cpu := summarize(c).CPU
		s := fmt.Sprintf(" In this run nginx took %.1f µs of CPU per request at 64 connections, %.2f× the %.1f µs of "+
			"the machine the budgets were set on.", cpu, cpu/refNginxCPUUS, refNginxCPUUS)
		if cpu > 1.5*refNginxCPUUS {
			s += " On a machine this much slower, a filter's cost grows faster than the request's (it is " +
				"mostly cache misses): read the costs below as upper bounds (RATIONALE.md)."
		}
		return s
	}
	return ""
}

func (h *harness) rateSection(b *strings.Builder) {
	var rows []string
	var rate float64
	for _, c := range h.cases {
		if len(c.Rate) == 0 {
			continue
		}
		var p50, p99, p999, ach, cpu []float64
		clean := 0
		for _, r := range c.Rate {
			if r.Clean {
				clean++
			}
		}
		for _, r := range c.Rate {
			if clean > 0 && !r.Clean {
				continue
			}
			rate = r.Result.Rate
			p50 = append(p50, r.Result.P50US)
			p99 = append(p99, r.Result.P99US)
			p999 = append(p999, r.Result.P999US)
			ach = append(ach, r.Result.Achieved)
			cpu = append(cpu, r.ProxyCPUUS)
		}
		rows = append(rows, fmt.Sprintf("| %s | %.0f | %.0f | %.0f | %.0f | %.1f | %d/%d |", c.Label, median(ach), median(p50), median(p99), median(p999), median(cpu), clean, len(c.Rate)))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "## Latency at a fixed rate (%.0f requests/s = half of nginx's 64-connection median; 64 connections)\n\n", rate)
	b.WriteString("Open-loop load from `bench load`: latency counts from each request's scheduled send time.\n\n")
	b.WriteString("| configuration | achieved RPS | p50 µs | p99 µs | p99.9 µs | proxy CPU µs/req | clean runs |\n|---|---:|---:|---:|---:|---:|---:|\n")
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n\n")
}

func (h *harness) memorySection(b *strings.Builder) {
	m := h.memory
	if m == nil {
		return
	}
	b.WriteString("## Memory\n\n")
	fmt.Fprintf(b, "- Idle RSS, empty pipeline: %.1f MiB\n", float64(m.EmptyRSSKiB)/1024)
	if m.QuickstartRSSKiB > 0 {
		fmt.Fprintf(b, "- Idle RSS, quickstart-like pipeline (%s): %.1f MiB; without the Wasm filter %.1f MiB (target ≤ 40 MiB); "+
			"the Wasm filter (compiled module, runtime, pool_min = %d Go-guest instances) adds %.1f MiB\n",
			strings.Join(m.QuickstartParts, ", "), float64(m.QuickstartRSSKiB)/1024, float64(m.NoWasmRSSKiB)/1024, m.WasmPoolMin, float64(m.WasmKiB)/1024)
	}
	for _, c := range m.PerConn {
		fmt.Fprintf(b, "- %d idle keep-alive client connections, %s: RSS %.1f → %.1f MiB, **%.1f KiB per connection**\n",
			c.conns(m.Conns), c.Proxy, float64(c.BeforeKiB)/1024, float64(c.AfterKiB)/1024, c.PerConnKiB)
	}
	b.WriteString("\n")
}

// reportMain is `bench report`: it renders the Markdown table and the chart again from a run's
// JSON, for instance after changing how they are drawn.
func reportMain(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("json", "testbed/results/bench-quick.json", "a run's JSON")
	out := fs.String("out", "testbed/results", "folder to write bench-MODE.md and .svg into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var raw struct {
		Mode     string            `json:"mode"`
		Started  time.Time         `json:"started"`
		Runs     int               `json:"runs"`
		PairRuns int               `json:"pair_runs"`
		Duration string            `json:"duration"`
		Warmup   string            `json:"warmup"`
		OtherMax float64           `json:"other_max"`
		Conns    []int             `json:"conns"`
		Cases    []*benchCase      `json:"cases"`
		Memory   *memoryResult     `json:"memory"`
		Selects  []selectRow       `json:"balancer_select"`
		Notes    []string          `json:"notes"`
		System   map[string]string `json:"system"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	h := &harness{fromJSON: true, started: raw.Started, cases: raw.Cases, memory: raw.Memory, selects: raw.Selects, notes: raw.Notes, sysinfo: raw.System}
	h.opt.mode, h.opt.out, h.opt.runs, h.opt.otherMax, h.opt.conns = raw.Mode, *out, raw.Runs, raw.OtherMax, raw.Conns
	h.opt.pairRuns = cmp.Or(raw.PairRuns, raw.Runs)
	h.opt.dur, _ = time.ParseDuration(raw.Duration)
	h.opt.warm, _ = time.ParseDuration(raw.Warmup)
	return h.writeReport()
}

// splitBalancer is the "split" row's balancer block body.
const splitBalancer = `    split {
      upstream = upstream.up
      weight   = 95
    }
    split {
      upstream = upstream.up2
      weight   = 5
    }
    sticky {
      cookie = "canary"
    }
    route_header {
      name     = "x-canary"
      value    = "1"
      upstream = upstream.up2
    }
`
