package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// interrupted is set on SIGINT/SIGTERM: the run stops after the current step and cleans up.
var interrupted atomic.Bool

var errInterrupted = errors.New("interrupted")

// options of `bench run`.
type options struct {
	mode  string
	conns []int
	runs  int
	// pairRuns is the number of runs of the filter-cost group (pairedGroup): its rows are
	// differences of a few tenths of a microsecond, and a run's difference moves by about 0.2 µs.
	pairRuns int
	dur      time.Duration
	warm     time.Duration
	big      bool // 16 KiB JSON with compression
	filters  bool // one Sluice variant per quickstart filter (per-filter budgets)
	rate     bool // latency at a fixed rate
	memory   bool // idle RSS and memory per connection
	nconns   int  // connections of the memory test
	// nconnsLarge is the larger count of the memory test's second Sluice row (0: none), and
	// selectBench runs the balancer selection benchmark (scaling.go).
	nconnsLarge int
	selectBench bool
	// extraRounds bounds the rounds added when other load disturbed runs; budget bounds the
	// whole invocation's time for them (0: no bound).
	extraRounds int
	budget      time.Duration
	repo        string
	out         string
	bin         string
	only        *regexp.Regexp
	otherMax    float64
}

// benchCase is one (proxy configuration, load) pair.
type benchCase struct {
	Label   string      `json:"label"`
	Kind    string      `json:"kind"` // nginx | haproxy | floor | sluice
	Variant string      `json:"variant,omitempty"`
	Group   string      `json:"group"`
	Conns   int         `json:"conns"`
	Path    string      `json:"path"`
	Runs    []runRecord `json:"runs"`
	Rate    []rateRun   `json:"rate,omitempty"`
	Skipped string      `json:"skipped,omitempty"`

	// Base labels the case loaded at once with this one (see measurePair); empty for a case
	// measured alone.
	Base string `json:"base,omitempty"`

	// Tool is the load generator (h2tls.go): "" wrk, h2load, or `bench tlsload` for handshakes.
	Tool string `json:"tool,omitempty"`
	// TLS: the case's address speaks TLS (https://); Curve is the key exchange group tlsload offers.
	TLS   bool   `json:"tls,omitempty"`
	Curve string `json:"curve,omitempty"`

	port    int
	headers []string
	grpcUp  bool   // its upstream is grpcupstream (grpcbench.go), whose CPU is the upstream's
	body    string // a request body file the load generator sends
	gzip    bool   // expects a gzip-encoded answer
	proc    *pinned
	base    *benchCase
}

func (c *benchCase) url() string {
	if c.TLS {
		return "https://" + addr(c.port) + c.Path
	}
	return "http://" + addr(c.port) + c.Path
}

// runRecord is one measured run.
type runRecord struct {
	Round         int     `json:"round"`
	RPS           float64 `json:"rps"`
	Requests      int64   `json:"requests"`
	Errors        int64   `json:"errors"`
	P50US         float64 `json:"p50_us"`
	P99US         float64 `json:"p99_us"`
	ProxyCPUUS    float64 `json:"proxy_cpu_us"`    // proxy process tree, per request
	Syscalls      float64 `json:"syscalls"`        // the proxy's read+write system calls per request
	UpstreamCPUUS float64 `json:"upstream_cpu_us"` // upstream process, per request
	WrkCPUUS      float64 `json:"wrk_cpu_us"`
	Core1Busy     float64 `json:"core1_busy"`  // share of core 1 busy (proxy + upstream + others)
	OtherCore0    float64 `json:"other_core0"` // share of core 0 busy beyond the test's processes
	OtherCore1    float64 `json:"other_core1"` // share of core 1 busy beyond the test's processes
	Other         float64 `json:"other"`       // share of a core used by other processes (both cores, kernel threads and softirq left out)
	Softirq       float64 `json:"softirq"`     // share of a core in softirq (both cores)
	Steal         float64 `json:"steal"`       // share of a core stolen by the hypervisor
	Clean         bool    `json:"clean"`
	// The base case's figures in the same run, for a case loaded at once with it.
	BaseRPS   float64 `json:"base_rps,omitempty"`
	BaseCPUUS float64 `json:"base_cpu_us,omitempty"`
}

// rateRun is one fixed-rate run.
type rateRun struct {
	Round      int        `json:"round"`
	Result     rateResult `json:"result"`
	ProxyCPUUS float64    `json:"proxy_cpu_us"`
	Other      float64    `json:"other"`
	Clean      bool       `json:"clean"`
}

type harness struct {
	opt      options
	run      string // scratch folder
	script   string // wrk Lua script
	procs    []*pinned
	upstream *pinned
	sink     *pinned
	cases    []*benchCase
	notes    []string // what was missing or skipped, for the report
	memory   *memoryResult
	selects  []selectRow // balancer selection at 3 and 1,000 targets (scaling.go)
	variants map[string]sluiceVariant
	qs       []component      // the quickstart-like pipeline's parts this build supports
	logBytes map[string]int64 // variant → largest otel_log file seen after one of its runs
	sluiceOK bool             // this build serves the empty pipeline
	started  time.Time
	sysinfo  map[string]string
	fromJSON bool    // rendering a saved run (bench report)
	grpcBody string  // the gRPC rows' request frame (grpcbench.go)
	grpcUp   *pinned // grpcupstream, when a gRPC case runs
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	mode := fs.String("mode", "quick", "quick | full | smoke (1 run of 1 s, for developing the harness)")
	out := fs.String("out", "testbed/results", "folder for the table, chart and raw JSON")
	bin := fs.String("bin", "bin", "folder holding sluice, floorproxy, benchupstream and bench")
	only := fs.String("only", "", `regexp: run only the cases whose "GROUP / LABEL" matches`)
	runs := fs.Int("runs", 0, "runs per case (default: 3, smoke 1)")
	pairRuns := fs.Int("pair-runs", 0, "runs per case of the filter-cost group (default: 5 in full mode, else -runs)")
	dur := fs.Duration("d", 0, "measured duration per run (default 10s, smoke 1s)")
	warm := fs.Duration("warmup", 0, "warm-up before each run (default 2s, smoke 1s)")
	filtersFlag := fs.Bool("filters", false, "also measure each quickstart filter alone (always on in full mode)")
	noMemory := fs.Bool("no-memory", false, "skip the memory measurements")
	otherMax := fs.Float64("other-max", 0.10, "a run is disturbed when processes outside the test used more than this share of a core (both cores together)")
	nconns := fs.Int("memory-conns", 10000, "idle keep-alive connections of the memory test")
	nconnsLarge := fs.Int("memory-conns-large", 0, "also measure Sluice alone with this many idle connections (full mode: 50000; needs an open-file limit above it)")
	extra := fs.Int("extra-rounds", 2, "rounds added at most when other load disturbed runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opt := options{mode: *mode, out: *out, bin: *bin, otherMax: *otherMax, memory: !*noMemory, nconns: *nconns,
		runs: 3, dur: 10 * time.Second, warm: 2 * time.Second, conns: []int{64}, filters: *filtersFlag,
		extraRounds: *extra, budget: 7 * time.Minute}
	switch *mode {
	case "quick":
	case "full":
		opt.conns = []int{64, 256}
		opt.big, opt.filters, opt.rate = true, true, true
		opt.budget = 40 * time.Minute
		opt.nconnsLarge, opt.selectBench = 50000, true
	case "smoke":
		opt.runs, opt.dur, opt.warm = 1, time.Second, time.Second
		opt.big, opt.rate = true, true
		opt.extraRounds = 0
		opt.nconns = 1000
		opt.selectBench = true
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "memory-conns" {
				opt.nconns = *nconns
			}
		})
	default:
		return fmt.Errorf("unknown mode %q: quick, full or smoke", *mode)
	}
	if *nconnsLarge > 0 {
		opt.nconnsLarge = *nconnsLarge
	}
	if *runs > 0 {
		opt.runs = *runs
	}
	opt.pairRuns = opt.runs
	if *mode == "full" {
		opt.pairRuns = 5
	}
	if *pairRuns > 0 {
		opt.pairRuns = *pairRuns
	}
	if *dur > 0 {
		opt.dur = *dur
	}
	if *warm > 0 {
		opt.warm = *warm
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return err
		}
		opt.only = re
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	opt.repo = wd
	if _, err := os.Stat(filepath.Join(wd, "go.mod")); err != nil {
		return errors.New("run from the repository root")
	}
	h := &harness{opt: opt, started: time.Now(), variants: map[string]sluiceVariant{}}
	defer h.cleanup()
	return h.main()
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (h *harness) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	h.notes = append(h.notes, n)
	h.logf("NOTE: %s", n)
}

func (h *harness) main() error {
	var err error
	if h.run, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
		return err
	}
	h.logf("scratch folder %s", h.run)
	if err := h.snapshotBinaries(); err != nil {
		return err
	}
	if h.script, err = writeWrkScript(h.run); err != nil {
		return err
	}
	h.sysinfo = systemInfo()
	for _, p := range []int{portUpstream, portUpstream + 1, portUpstream + 2, portNginx, portNginx + 10, portNginx + 11, portHAProxy, portFloor, portFloor + 1, portPairBase, portPairBase + 1, portSink,
		portCeiling, portCeilingTLS, portNginxH2c, portNginxTLS, portGRPCUp, portNginxGRPC} {
		if portInUse(p) {
			return fmt.Errorf("port %d is in use: is another benchmark running?", p)
		}
	}
	if err := h.startBackground(); err != nil {
		return err
	}
	if err := writeCert(h.run); err != nil {
		return err
	}
	h.planCases()
	if err := h.startProxies(); err != nil {
		return err
	}
	h.checkCases()
	h.prewarm()

	for _, g := range h.groups() {
		h.measureGroup(g)
		if interrupted.Load() {
			return errInterrupted
		}
	}
	if h.opt.rate {
		h.measureRate()
		if interrupted.Load() {
			return errInterrupted
		}
	}
	h.checkTelemetry()
	// The memory test needs the machine to itself: stop the load benchmark's proxies first.
	h.stopAll()
	if h.opt.memory {
		if m, err := h.measureMemory(); err != nil {
			h.note("memory measurement failed: %v", err)
		} else {
			h.memory = m
		}
		h.stopAll()
	}
	if h.opt.selectBench {
		if rows, err := h.measureSelect(); err != nil {
			h.note("balancer selection benchmark failed: %v", err)
		} else {
			h.selects = rows
		}
	}
	h.logf("finished in %s", time.Since(h.started).Round(time.Second))
	return h.writeReport()
}

func portInUse(p int) bool {
	c, err := net.DialTimeout("tcp", addr(p), 200*time.Millisecond)
	if err == nil {
		c.Close()
		return true
	}
	return false
}

func (h *harness) binPath(name string) string { return filepath.Join(h.opt.bin, name) }

// snapshotBinaries copies the binaries into the scratch folder and runs those: bin/ is shared, and
// a rebuild during a run must not swap a proxy's binary between two of its runs.
func (h *harness) snapshotBinaries() error {
	dir := filepath.Join(h.run, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"sluice", "floorproxy", "benchupstream", "bench", "sluiceprof", "h2ceiling", "grpcupstream"} {
		src := filepath.Join(h.opt.bin, name)
		b, err := os.ReadFile(src)
		if err != nil {
			if name == "sluiceprof" {
				continue // only `bench profile` needs it
			}
			return fmt.Errorf("%w (build the binaries with testbed/bench/run.sh)", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			return err
		}
	}
	h.opt.bin = dir
	return nil
}

func (h *harness) start(name, cpus string, env []string, argv ...string) (*pinned, error) {
	p, err := startPinned(h.run, name, cpus, env, argv...)
	if err != nil {
		return nil, err
	}
	h.procs = append(h.procs, p)
	return p, nil
}

// cleanup stops every process and removes the copied binaries (the configurations and logs stay
// in the scratch folder for inspection).
func (h *harness) cleanup() {
	h.stopAll()
	if h.run != "" {
		_ = os.RemoveAll(filepath.Join(h.run, "bin"))
	}
}

func (h *harness) stopAll() {
	for _, p := range h.procs {
		p.stop()
	}
	h.procs = nil
	h.upstream, h.sink = nil, nil
}

// startBackground starts the upstream (core 1, with the proxies) and the OTLP sink (core 0).
func (h *harness) startBackground() error {
	if err := h.ensureUpstream(3); err != nil {
		return err
	}
	var err error
	if h.sink, err = h.start("sink", "0", nil, h.binPath("bench"), "sink", "-listen", addr(portSink)); err != nil {
		return err
	}
	if err := waitPort(portSink, 10*time.Second); err != nil {
		return fmt.Errorf("the OTLP sink did not start: %w\n%s", err, h.sink.logTail())
	}
	return nil
}

// ensureUpstream starts the upstream (core 1, beside the proxies) on n ports unless it runs.
func (h *harness) ensureUpstream(n int) error {
	if h.upstream != nil && !h.upstream.exited() {
		return nil
	}
	var addrs []string
	for i := 0; i < n; i++ {
		addrs = append(addrs, addr(portUpstream+i))
	}
	var err error
	if h.upstream, err = h.start("upstream", "1", nil, h.binPath("benchupstream"), "-listen", strings.Join(addrs, ",")); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := waitPort(portUpstream+i, 10*time.Second); err != nil {
			return fmt.Errorf("the upstream did not start: %w\n%s", err, h.upstream.logTail())
		}
	}
	return nil
}

func waitPort(p int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if portInUse(p) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %d after %s", p, d)
}

// pairedGroup holds the cases loaded at once with the empty pipeline, and controlLabel the one
// among them that runs a second empty pipeline.
const (
	pairedGroup  = "64 conns, 64 B, loaded at once with the empty pipeline"
	controlLabel = "sluice empty (control)"
)

// planCases decides the Sluice variants (checking which filter kinds this build has) and the
// list of cases.
func (h *harness) planCases() {
	token, err := mintHS256(benchHMACSecret, "https://bench.sluice/", "bench", "bench-user", 24*time.Hour)
	if err != nil {
		panic(err) // only JSON marshalling of fixed maps
	}
	wasmModule, werr := buildWasmFilter(h.opt.repo, h.run)
	if werr != nil {
		h.note("%v", werr)
	}
	all := components(h.run, wasmModule, token, false)
	avail := map[string]component{}
	for _, c := range all {
		if c.name == "wasm" && werr != nil {
			continue
		}
		if err := h.checkVariant(sluiceVariant{name: "check-" + c.name, parts: []component{c}}); err != nil {
			h.note("quickstart part %s left out: %v", c.name, err)
			continue
		}
		avail[c.name] = c
	}
	var qs []component
	var missing []string
	for _, c := range all {
		if _, ok := avail[c.name]; ok {
			qs = append(qs, c)
		} else {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		h.note("the quickstart-like pipeline runs without: %s", strings.Join(missing, ", "))
	}

	h.qs = qs
	sluiceOK := true
	if err := h.checkVariant(sluiceVariant{name: "empty"}); err != nil {
		h.note("Sluice cannot serve the empty pipeline, so no Sluice case runs: %v", err)
		sluiceOK = false
	}
	h.sluiceOK = sluiceOK
	type sv struct {
		label string
		v     sluiceVariant
	}
	var main []sv
	if sluiceOK {
		main = append(main, sv{"sluice empty", sluiceVariant{name: "empty"}})
		if len(qs) > 0 {
			main = append(main, sv{"sluice quickstart", sluiceVariant{name: "quickstart", parts: qs}})
		}
		p2c := sluiceVariant{name: "p2c", policy: "p2c_ewma", targets: 3}
		if err := h.checkVariant(p2c); err != nil {
			h.note("p2c_ewma left out: %v", err)
		} else {
			main = append(main, sv{"sluice p2c_ewma×3", p2c})
		}
	}
	peers := []struct {
		label, kind string
		port        int
	}{{"nginx", "nginx", portNginx}, {"haproxy", "haproxy", portHAProxy}, {"floor", "floor", portFloor}}

	sluicePort := map[string]int{}
	portOf := func(v sluiceVariant) int {
		if p, ok := sluicePort[v.name]; ok {
			return p
		}
		p := portSluiceBase + len(sluicePort)
		sluicePort[v.name] = p
		h.variants[v.name] = v
		return p
	}
	add := func(c *benchCase) {
		// -only matches "GROUP / LABEL", so a group (HTTP/2, TLS, gRPC) can be run alone.
		if h.opt.only != nil && !h.opt.only.MatchString(c.Group+" / "+c.Label) {
			return
		}
		h.cases = append(h.cases, c)
	}
	for _, n := range h.opt.conns {
		g := fmt.Sprintf("%d conns, 64 B", n)
		for _, p := range peers {
			add(&benchCase{Label: p.label, Kind: p.kind, Group: g, Conns: n, Path: "/", port: p.port})
		}
		if h.opt.filters && n == 64 {
			// What fasthttp's ReduceMemoryUsage costs in CPU (it saves memory per idle connection).
			add(&benchCase{Label: "floor, ReduceMemoryUsage", Kind: "floor-rm", Group: g, Conns: n, Path: "/", port: portFloor + 1})
			// The floor with the runtime setting `sluice run` gives itself (cmd/sluice/sysmon.go):
			// Sluice ÷ this is the cost of Sluice's own code path.
			add(&benchCase{Label: "floor, schedtrace", Kind: "floor-st", Group: g, Conns: n, Path: "/", port: portFloor + 2})
		}
		for _, s := range main {
			add(&benchCase{Label: s.label, Kind: "sluice", Variant: s.v.name, Group: g, Conns: n, Path: "/",
				port: portOf(s.v), headers: s.v.headers()})
		}
		if h.opt.filters && n == 64 && sluiceOK {
			// Each quickstart part alone, for the per-filter budgets (CPU over the empty pipeline),
			// loaded at once with the empty pipeline (see measurePair). A second empty pipeline
			// loaded at once with the first shows what the method itself reads as a cost.
			h.variants["empty"] = sluiceVariant{name: "empty"}
			base := &benchCase{Label: "sluice empty", Kind: "sluice", Variant: "empty", Group: pairedGroup, Conns: n, Path: "/", port: portPairBase}
			pair := func(label string, v sluiceVariant) {
				h.variants[v.name] = v
				add(&benchCase{Label: label, Kind: "sluice", Variant: v.name, Group: pairedGroup, Conns: n, Path: "/",
					port: portPairBase + 1, headers: v.headers(), Base: base.Label, base: base})
			}
			pair(controlLabel, sluiceVariant{name: "empty-control"})
			if len(qs) > 0 {
				// Its own variant name: the main case's process keeps running, and would share
				// the otel_log file.
				pair("sluice quickstart", sluiceVariant{name: "pair-quickstart", parts: qs})
			}
			for _, c := range qs {
				pair("sluice +"+c.name, sluiceVariant{name: "only-" + c.name, parts: []component{c}})
				if c.name == "wasm" {
					t := components(h.run, wasmModule, token, true)[3]
					t.name = "wasm+timeout"
					if err := h.checkVariant(sluiceVariant{name: "check-wasm-timeout", parts: []component{t}}); err == nil {
						pair("sluice +"+t.name, sluiceVariant{name: "only-wasm-timeout", parts: []component{t}})
					}
				}
			}
			// The rewrite filter with a simple regex (issue 30's 0.5 µs budget); the path it
			// sends is the one it received, so the upstream answers as for the others.
			rw := component{name: "rewrite", filter: `  filter "rewrite" {
    path_regex   = "^/(.*)$"
    path_replace = "/$1"
  }
`}
			// The fault filter gated on a header the load does not send: what it costs the
			// requests it leaves alone.
			ft := component{name: "fault", filter: `  filter "fault" {
    header       = "X-Fault-Test"
    abort_status = 503
  }
`}
			rows := []component{rw, ft}
			if edge, err := edgeComponents(h.run); err != nil {
				h.note("cors, ip_filter and key_auth left out: %v", err)
			} else {
				rows = append(rows, edge...)
			}
			if auth, err := edgeAuthComponents(h.run); err != nil { // edgeauth.go
				h.note("basic_auth and forward_auth left out: %v", err)
			} else {
				rows = append(rows, auth...)
			}
			for _, c := range rows {
				if err := h.checkVariant(sluiceVariant{name: "check-" + c.name, parts: []component{c}}); err != nil {
					h.note("%s left out: %v", c.name, err)
					continue
				}
				pair("sluice +"+c.name, sluiceVariant{name: "only-" + c.name, parts: []component{c}})
			}

			// The dashboard's per-stage timings (issue 33's budget: 50 ns a filter phase): two
			// headers filters and the balancer, five timed phases, loaded at once with the same
			// configuration with `stage_timings = false` rather than with the empty pipeline.
			twoHeaders := []component{{name: "headers", filter: `  filter "headers" {
    request_set = { "X-Bench-A" = "1" }
  }
  filter "headers" {
    response_set = { "X-Bench-B" = "1" }
  }
`}}
			off := sluiceVariant{name: "timings-off", parts: append([]component{{name: "timings off", telemetry: "telemetry {\n  stage_timings = false\n}\n"}}, twoHeaders...)}
			h.variants[off.name] = off
			offBase := &benchCase{Label: "sluice 2 headers, stage_timings = false", Kind: "sluice", Variant: off.name, Group: pairedGroup, Conns: n, Path: "/", port: portPairBase}
			on := sluiceVariant{name: "timings-on", parts: twoHeaders}
			h.variants[on.name] = on
			add(&benchCase{Label: "sluice +stage timings", Kind: "sluice", Variant: on.name, Group: pairedGroup, Conns: n, Path: "/",
				port: portPairBase + 1, Base: offBase.Label, base: offBase})

			pair("sluice +routing", sluiceVariant{name: "only-routing", pipelines: canaryPipeline,
				parts: []component{{name: "routing", headers: []string{"X-Canary: 1"}}}})

			// The balancer's per-request choice: a sticky 95/5 split and a header route (wrk
			// sends no cookie back, so each request is drawn and answered with Set-Cookie).
			pair("sluice +split", sluiceVariant{name: "only-split", balancer: splitBalancer})
			if wat, err := buildWATGuest(h.opt.repo, h.run); err != nil {
				h.note("%v", err)
			} else if c := watComponent(wat); h.checkVariant(sluiceVariant{name: "check-wasm-wat", parts: []component{c}}) != nil {
				h.note("the WAT guest's filter does not validate")
			} else {
				pair("sluice +"+c.name, sluiceVariant{name: "only-wasm-wat", parts: []component{c}})
			}
			if pw, err := buildProxyWasmGuest(h.opt.repo, h.run); err != nil {
				h.note("%v", err)
			} else if c := proxyWasmComponent(pw); h.checkVariant(sluiceVariant{name: "check-wasm-proxy", parts: []component{c}}) != nil {
				h.note("the proxy-wasm WAT guest's filter does not validate")
			} else {
				pair("sluice +"+c.name, sluiceVariant{name: "only-wasm-proxy", parts: []component{c}})
			}
		}
	}
	if h.opt.big {
		g := "64 conns, 16 KiB JSON, Accept-Encoding: gzip"
		ae := []string{"Accept-Encoding: gzip"}
		add(&benchCase{Label: "nginx gzip off", Kind: "nginx", Group: g, Conns: 64, Path: "/big", port: portNginx, headers: ae})
		add(&benchCase{Label: "nginx gzip 1", Kind: "nginx", Group: g, Conns: 64, Path: "/big", port: portNginx + 10, headers: ae, gzip: true})
		add(&benchCase{Label: "nginx gzip 6", Kind: "nginx", Group: g, Conns: 64, Path: "/big", port: portNginx + 11, headers: ae, gzip: true})
		add(&benchCase{Label: "floor", Kind: "floor", Group: g, Conns: 64, Path: "/big", port: portFloor, headers: ae})
		if sluiceOK {
			add(&benchCase{Label: "sluice empty", Kind: "sluice", Variant: "empty", Group: g, Conns: 64, Path: "/big",
				port: portOf(sluiceVariant{name: "empty"}), headers: ae})
			for _, lvl := range []int{1, 6} {
				v := sluiceVariant{name: fmt.Sprintf("gzip%d", lvl), extra: compressBlock(lvl)}
				if err := h.checkVariant(v); err != nil {
					h.note("compress left out: %v", err)
					break
				}
				add(&benchCase{Label: fmt.Sprintf("sluice compress gzip %d", lvl), Kind: "sluice", Variant: v.name, Group: g,
					Conns: 64, Path: "/big", port: portOf(v), headers: ae, gzip: true})
			}
		}
	}
	h.planH2TLSCases(add, portOf)
	h.planGRPCCases(add, portOf)
}

// checkVariant writes a variant's configuration and runs `sluice validate` on it.
func (h *harness) checkVariant(v sluiceVariant) error {
	p := filepath.Join(h.run, v.name+".hcl")
	if err := os.WriteFile(p, []byte(v.hcl(portSluiceBase+99)), 0o644); err != nil {
		return err
	}
	return validateSluice(h.binPath("sluice"), p)
}

// startProxies starts every proxy some case needs, all pinned to core 1.
func (h *harness) startProxies() error {
	need := map[string]bool{}
	for _, c := range h.cases {
		if c.base != nil {
			continue // started for each of its runs
		}
		if c.Kind == "sluice" {
			need["sluice:"+c.Variant] = true
		} else {
			need[c.Kind] = true
		}
	}
	procs := map[string]*pinned{}
	var err error
	if need["nginx"] {
		conf := filepath.Join(h.run, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConf(h.run)), 0o644); err != nil {
			return err
		}
		if procs["nginx"], err = h.start("nginx", "1", nil, "nginx", "-p", h.run+"/", "-c", conf); err != nil {
			return err
		}
	}
	if need["haproxy"] {
		conf := filepath.Join(h.run, "haproxy.cfg")
		if err := os.WriteFile(conf, []byte(haproxyConf()), 0o644); err != nil {
			return err
		}
		if procs["haproxy"], err = h.start("haproxy", "1", nil, "haproxy", "-db", "-f", conf); err != nil {
			return err
		}
	}
	if need["floor"] {
		if procs["floor"], err = h.start("floor", "1", nil, h.binPath("floorproxy"), "-listen", addr(portFloor), "-upstream", addr(portUpstream)); err != nil {
			return err
		}
	}
	if need["floor-rm"] {
		if procs["floor-rm"], err = h.start("floor-rm", "1", nil, h.binPath("floorproxy"), "-listen", addr(portFloor+1), "-upstream", addr(portUpstream), "-reduce-memory"); err != nil {
			return err
		}
	}
	for _, c := range h.cases {
		need["grpcup"] = need["grpcup"] || c.grpcUp
	}
	if need["grpcup"] {
		if procs["grpcup"], err = h.start("grpcup", "1", nil, h.binPath("grpcupstream"), "-listen", addr(portGRPCUp)); err != nil {
			return err
		}
		h.grpcUp = procs["grpcup"]
	}
	if need["ceiling"] {
		cert, key := certFiles(h.run)
		if procs["ceiling"], err = h.start("ceiling", "1", nil, h.binPath("h2ceiling"), "-listen", addr(portCeiling),
			"-tls-listen", addr(portCeilingTLS), "-cert", cert, "-key", key); err != nil {
			return err
		}
	}
	if need["floor-st"] {
		if procs["floor-st"], err = h.start("floor-st", "1", []string{"GODEBUG=" + sysmonGodebug}, h.binPath("floorproxy"), "-listen", addr(portFloor+2), "-upstream", addr(portUpstream)); err != nil {
			return err
		}
	}
	ports := map[string]int{}
	for _, c := range h.cases {
		if c.Kind == "sluice" && c.base == nil {
			ports[c.Variant] = c.port
		}
	}
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		conf := filepath.Join(h.run, "sluice-"+n+".hcl")
		if err := os.WriteFile(conf, []byte(h.variants[n].hcl(ports[n])), 0o644); err != nil {
			return err
		}
		if procs["sluice:"+n], err = h.start("sluice-"+n, "1", nil, h.binPath("sluice"), "run", "-c", conf, "-log-level", "warn"); err != nil {
			return err
		}
	}
	for _, c := range h.cases {
		key := c.Kind
		if c.Kind == "sluice" {
			key = "sluice:" + c.Variant
		}
		c.proc = procs[key]
	}
	return nil
}

// checkCases waits until every case answers its request correctly; a case that does not is
// skipped with the reason.
func (h *harness) checkCases() {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	for _, c := range h.cases {
		if c.base != nil {
			continue // measurePair starts and checks it
		}
		deadline := time.Now().Add(60 * time.Second)
		var err error
		for {
			if c.proc.exited() {
				err = fmt.Errorf("%s exited: %s", c.proc.name, c.proc.logTail())
				break
			}
			if err = probe(client, c); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			c.Skipped = err.Error()
			h.note("case %q (%s) skipped: %v", c.Label, c.Group, err)
		}
	}
}

// prewarm loads every proxy once with the most connections any of its cases uses, so that pools
// sized by concurrency (upstream connections, Wasm instances, which cost milliseconds each to
// create) are full before the first measured run.
func (h *harness) prewarm() {
	most := map[*pinned]*benchCase{}
	for _, c := range h.cases {
		if c.Skipped != "" || c.base != nil {
			continue
		}
		if m, ok := most[c.proc]; !ok || c.Conns > m.Conns {
			most[c.proc] = c
		}
	}
	for _, c := range h.cases {
		if c.base != nil || most[c.proc] != c {
			continue
		}
		// Until two consecutive loads agree within 15%: a Wasm pool that is still growing
		// (milliseconds per Go guest instance) shows as a rising rate.
		prev := 0.0
		for i := 0; i < 6 && !interrupted.Load(); i++ {
			w, err := h.load(c, h.opt.warm+time.Second)
			if err != nil {
				h.note("pre-warming %s: %v", c.proc.name, err)
				break
			}
			r := w.rps()
			h.logf("pre-warming %s with %d connections: %.0f rps", c.proc.name, c.Conns, r)
			if prev > 0 && r > 0 && r/prev > 0.85 && r/prev < 1.15 {
				break
			}
			prev = r
		}
	}
}

// probe sends the case's request once and checks the answer.
func probe(client *http.Client, c *benchCase) error {
	if c.Tool == toolH2GRPC {
		return probeGRPC(c, c.body)
	}
	if c.Tool != "" || c.TLS {
		return probeH2TLS(c)
	}
	req, err := http.NewRequest("GET", c.url(), nil)
	if err != nil {
		return err
	}
	for _, hd := range c.headers {
		k, v, _ := strings.Cut(hd, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, firstLines(string(body), 2))
	}
	enc := resp.Header.Get("Content-Encoding")
	if c.gzip {
		if enc != "gzip" {
			return fmt.Errorf("expected a gzip-encoded answer, got Content-Encoding %q", enc)
		}
		zr, err := gzip.NewReader(strings.NewReader(string(body)))
		if err != nil {
			return err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return err
		}
	} else if enc != "" {
		return fmt.Errorf("unexpected Content-Encoding %q", enc)
	}
	want := 64
	if c.Path == "/big" {
		want = 16 << 10
	}
	if len(body) != want {
		return fmt.Errorf("body of %d bytes, want %d", len(body), want)
	}
	return nil
}

// groups returns the case groups in order, each a list of cases that run interleaved.
func (h *harness) groups() [][]*benchCase {
	var order []string
	by := map[string][]*benchCase{}
	for _, c := range h.cases {
		if c.Skipped != "" {
			continue
		}
		if _, ok := by[c.Group]; !ok {
			order = append(order, c.Group)
		}
		by[c.Group] = append(by[c.Group], c)
	}
	out := make([][]*benchCase, 0, len(order))
	for _, g := range order {
		out = append(out, by[g])
	}
	return out
}

// measureGroup runs the group's cases interleaved: round 1 of every case, then round 2, …
func (h *harness) measureGroup(cases []*benchCase) {
	n := h.runsOf(cases[0].Group)
	h.logf("group %q: %d cases × %d runs of %s (+%s warm-up)", cases[0].Group, len(cases), n, h.opt.dur, h.opt.warm)
	for r := 1; r <= n; r++ {
		h.measureRound(cases, r)
	}
	// Runs disturbed by other load are left out of the medians: while a case lacks clean runs,
	// add whole rounds (every case again, so the interleaving stays fair), within the time budget.
	round := n
	perRound := time.Duration(len(cases)) * (h.opt.dur + h.opt.warm + time.Second)
	for extra := 0; extra < h.opt.extraRounds && !interrupted.Load(); extra++ {
		short := false
		for _, c := range cases {
			if c.Skipped == "" && summarize(c).Clean < n {
				short = true
			}
		}
		if !short {
			return
		}
		if h.opt.budget > 0 && time.Since(h.started)+perRound > h.opt.budget {
			h.note("group %q: some cases have fewer than %d undisturbed runs; no time left for another round", cases[0].Group, n)
			return
		}
		round++
		h.logf("extra round %d: other load disturbed some runs", round)
		h.measureRound(cases, round)
	}
}

// runsOf is the number of runs of a group's cases.
func (h *harness) runsOf(group string) int {
	if group == pairedGroup {
		return h.opt.pairRuns
	}
	return h.opt.runs
}

func (h *harness) measureRound(cases []*benchCase, r int) {
	for _, c := range cases {
		if interrupted.Load() {
			return
		}
		if c.Skipped != "" {
			continue
		}
		rec, err := h.measure(c, r)
		if err != nil {
			c.Skipped = err.Error()
			h.note("case %q (%s) stopped: %v", c.Label, c.Group, err)
			continue
		}
		c.Runs = append(c.Runs, rec)
		flag := ""
		if !rec.Clean {
			flag = fmt.Sprintf("  DISTURBED (others %.0f%% of a core, stolen %.0f%%; core0 %.0f%%, core1 %.0f%%)", 100*rec.Other, 100*rec.Steal, 100*rec.OtherCore0, 100*rec.OtherCore1)
		}
		if c.base != nil {
			flag = fmt.Sprintf("  (%s at once: %.0f rps, %.1f µs/req)", c.base.Label, rec.BaseRPS, rec.BaseCPUUS) + flag
		}
		h.logf("  %d/%d %-26s %8.0f rps  p50 %6.0f µs  p99 %6.0f µs  proxy %5.1f µs/req %4.1f syscalls/req  upstream %4.1f  wrk %4.1f%s",
			r, h.runsOf(c.Group), c.Label, rec.RPS, rec.P50US, rec.P99US, rec.ProxyCPUUS, rec.Syscalls, rec.UpstreamCPUUS, rec.WrkCPUUS, flag)
	}
}

// accessLogs truncates the otel_log files so the disk does not fill during long runs.
func (h *harness) truncateLogs() {
	matches, _ := filepath.Glob(filepath.Join(h.run, "access-*.log"))
	for _, m := range matches {
		_ = os.Truncate(m, 0)
	}
}

// sample is the CPU accounting at one instant.
type sample struct {
	at       time.Time
	stat     map[int]cpuStat
	softirq  int64
	proxy    int64   // every proxy sampled
	each     []int64 // each proxy sampled, in order
	syscalls int64   // the first proxy's
	upstream int64
	self     int64
	sink     int64
	kthreads int64
}

// sampleCase samples c's proxy, with grpcupstream as the upstream for a gRPC case.
func (h *harness) sampleCase(c *benchCase) sample {
	s := h.sample(c.proc)
	if c.grpcUp && h.grpcUp != nil {
		s.upstream += treeTimes(h.grpcUp.pid()).ticks
	}
	return s
}

func (h *harness) sample(proxies ...*pinned) sample {
	st, _ := readProcStat()
	s := sample{at: time.Now(), stat: st, softirq: softirqTicks()}
	for _, p := range proxies {
		t := treeTimes(p.pid()).ticks
		s.each = append(s.each, t)
		s.proxy += t
	}
	s.syscalls = treeSyscalls(proxies[0].pid())
	s.upstream = treeTimes(h.upstream.pid()).ticks
	s.self, _ = cpuTicks(os.Getpid())
	if h.sink != nil {
		s.sink, _ = cpuTicks(h.sink.pid())
	}
	s.kthreads = kthreadTicks()
	return s
}

// disturbance computes what ran beside the test between two samples, as shares of one core:
// per core, busy time beyond the test's processes pinned there (others0 also leaves out the
// harness and the sink; both leave out half the softirq time each), and in total, busy time of
// both cores beyond every test process, kernel threads and softirq work (which may be charged
// to no process). extra is CPU known to be ours on core 0 (wrk or the load generator).
func disturbance(a, b sample, extra int64) (other0, other1, other, softirq, steal, busy1 float64) {
	wall := b.at.Sub(a.at).Seconds() * clockTick
	if wall <= 0 {
		return
	}
	busy := func(cpu int) float64 { return float64(b.stat[cpu].busy - a.stat[cpu].busy) }
	proxy, ups := float64(b.proxy-a.proxy), float64(b.upstream-a.upstream)
	ours0 := float64(extra + (b.self - a.self) + (b.sink - a.sink))
	si := float64(b.softirq - a.softirq)
	kt := float64(b.kthreads - a.kthreads)
	other0 = (busy(0) - ours0 - si/2) / wall
	other1 = (busy(1) - proxy - ups - si/2) / wall
	other = (busy(0) + busy(1) - ours0 - proxy - ups - si - kt) / wall
	steal = float64(b.stat[-1].steal-a.stat[-1].steal) / wall
	return max(other0, 0), max(other1, 0), max(other, 0), si / wall, steal, busy(1) / wall
}

// softirqTicks is the softirq column of /proc/stat's total line.
func softirqTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 {
		return 0
	}
	n, _ := strconv.ParseInt(f[7], 10, 64)
	return n
}

func (h *harness) measure(c *benchCase, round int) (runRecord, error) {
	if c.base != nil {
		return h.measurePair(c, round)
	}
	if c.proc.exited() {
		return runRecord{}, fmt.Errorf("%s exited: %s", c.proc.name, c.proc.logTail())
	}
	h.truncateLogs()
	if _, err := h.load(c, h.opt.warm); err != nil {
		return runRecord{}, err
	}
	a := h.sampleCase(c)
	w, err := h.load(c, h.opt.dur)
	if err != nil {
		return runRecord{}, err
	}
	b := h.sampleCase(c)
	return h.record(c, round, w, a, b, b.proxy-a.proxy, w.CPUTicks)
}

// measurePair loads c and its base case at once, each with its own wrk on core 0 and both
// proxies on core 1, and records c's run with the base's figures beside it. Run one after the
// other, a filter's cost under load (a microsecond or a few over the empty pipeline's 35–45) is
// lost in the machine's drift between runs; loaded at once, both proxies meet the same drift,
// and the difference of their CPU per request is the filter's. Both proxies start afresh for each
// run: a process keeps the memory layout it started with, which can make it a few percent faster
// or slower than an identical one for its whole life, and new processes in every run turn that
// into noise that the median over runs reduces. The control pair (a second empty pipeline) shows
// what is left of it.
func (h *harness) measurePair(c *benchCase, round int) (runRecord, error) {
	var err error
	if c.base.proc, err = h.startFresh(c.base); err != nil {
		return runRecord{}, err
	}
	defer h.stopProc(c.base.proc)
	if c.proc, err = h.startFresh(c); err != nil {
		return runRecord{}, err
	}
	defer h.stopProc(c.proc)
	h.truncateLogs()
	if _, _, err := h.wrkPair(c, h.opt.warm); err != nil {
		return runRecord{}, err
	}
	a := h.sample(c.proc, c.base.proc)
	w, wb, err := h.wrkPair(c, h.opt.dur)
	if err != nil {
		return runRecord{}, err
	}
	b := h.sample(c.proc, c.base.proc)
	if wb.Requests == 0 {
		return runRecord{}, fmt.Errorf("no request to %s completed", c.base.Label)
	}
	rec, err := h.record(c, round, w, a, b, b.each[0]-a.each[0], w.CPUTicks+wb.CPUTicks)
	rec.BaseCPUUS = float64(b.each[1]-a.each[1]) / clockTick * 1e6 / float64(wb.Requests)
	rec.BaseRPS = wb.rps()
	if wb.errors() > wb.Requests/1000 {
		rec.Clean = false
	}
	rec.UpstreamCPUUS = float64(b.upstream-a.upstream) / clockTick * 1e6 / float64(max(w.Requests+wb.Requests, 1))
	return rec, err
}

// startFresh starts a Sluice process for c alone (on c's port) and waits until it answers c's
// request.
func (h *harness) startFresh(c *benchCase) (*pinned, error) {
	conf := filepath.Join(h.run, "pair-"+c.Variant+".hcl")
	if err := os.WriteFile(conf, []byte(h.variants[c.Variant].hcl(c.port)), 0o644); err != nil {
		return nil, err
	}
	p, err := h.start("pair-"+c.Variant, "1", nil, h.binPath("sluice"), "run", "-c", conf, "-log-level", "warn")
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			err := fmt.Errorf("%s exited: %s", p.name, p.logTail())
			h.stopProc(p)
			return nil, err
		}
		err := probe(client, c)
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			h.stopProc(p)
			return nil, fmt.Errorf("%s does not answer: %w", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopProc stops a process started with start and forgets it.
func (h *harness) stopProc(p *pinned) {
	p.stop()
	h.procs = slices.DeleteFunc(h.procs, func(q *pinned) bool { return q == p })
}

// wrkPair runs c's load and its base's at once, for d. The base gets c's request, headers and
// all: a filter's cost is what it adds to the same request, not what a larger request costs (a
// bearer token is a few hundred bytes to read, parse and forward, filter or not).
func (h *harness) wrkPair(c *benchCase, d time.Duration) (w, wb wrkResult, err error) {
	var errb error
	done := make(chan struct{})
	go func() {
		defer close(done)
		wb, errb = runWrk("0", h.script, c.base.url(), c.base.Conns, d, c.headers)
	}()
	w, err = runWrk("0", h.script, c.url(), c.Conns, d, c.headers)
	<-done
	return w, wb, errors.Join(err, errb)
}

// record turns a run's wrk result and the samples around it into c's run record; proxyTicks is
// the CPU of c's proxy over the run, and wrkTicks that of the run's load generators, on core 0.
func (h *harness) record(c *benchCase, round int, w wrkResult, a, b sample, proxyTicks, wrkTicks int64) (runRecord, error) {
	for _, p := range h.variants[c.Variant].parts {
		if p.name == "otel_log" && c.Kind == "sluice" {
			var n int64
			if st, err := os.Stat(filepath.Join(h.run, "access-"+c.Variant+".log")); err == nil {
				n = st.Size()
			}
			if h.logBytes == nil {
				h.logBytes = map[string]int64{}
			}
			h.logBytes[c.Variant] = max(h.logBytes[c.Variant], n)
		}
	}
	if w.Requests == 0 {
		return runRecord{}, fmt.Errorf("no request completed (wrk: %d connect, %d read, %d write errors, %d timeouts)",
			w.ErrConnect, w.ErrRead, w.ErrWrite, w.ErrTimeout)
	}
	perReq := func(ticks int64) float64 { return float64(ticks) / clockTick * 1e6 / float64(w.Requests) }
	rec := runRecord{
		Round: round, RPS: w.rps(), Requests: w.Requests, Errors: w.errors(), P50US: w.P50US, P99US: w.P99US,
		ProxyCPUUS: perReq(proxyTicks), Syscalls: float64(b.syscalls-a.syscalls) / float64(w.Requests), UpstreamCPUUS: perReq(b.upstream - a.upstream), WrkCPUUS: perReq(w.CPUTicks),
	}
	rec.OtherCore0, rec.OtherCore1, rec.Other, rec.Softirq, rec.Steal, rec.Core1Busy = disturbance(a, b, wrkTicks)
	rec.Clean = rec.Other < h.opt.otherMax && rec.Steal < h.opt.otherMax
	switch {
	case rec.Errors > w.Requests/10:
		// A proxy failing this much is broken, not slow: stop measuring it.
		return rec, fmt.Errorf("%d errors in %d requests (status, connect, read, timeout)", rec.Errors, w.Requests)
	case rec.Errors > w.Requests/1000:
		// A few timeouts happen when other load stalls the machine: keep the run out of the
		// medians and say so.
		rec.Clean = false
		h.note("case %q (%s), run %d: %d errors in %d requests; the run is left out of the medians", c.Label, c.Group, round, rec.Errors, w.Requests)
	}
	return rec, nil
}

// measureRate runs the fixed-rate latency test at half of nginx's median rate (64 connections).
func (h *harness) measureRate() {
	var nginxRPS float64
	var cases []*benchCase
	for _, c := range h.cases {
		if c.Group != "64 conns, 64 B" || c.Skipped != "" {
			continue
		}
		if c.Label == "nginx" {
			nginxRPS = summarize(c).RPS
		}
		switch c.Label {
		case "nginx", "haproxy", "floor", "sluice empty", "sluice quickstart":
			cases = append(cases, c)
		}
	}
	if nginxRPS == 0 {
		h.note("no nginx figure at 64 connections: the fixed-rate test needs it")
		return
	}
	rate := float64(int(nginxRPS/2/100) * 100)
	h.logf("fixed rate: %.0f requests/s (half of nginx's %.0f), %d cases × %d runs", rate, nginxRPS, len(cases), h.opt.runs)
	for r := 1; r <= h.opt.runs; r++ {
		for _, c := range cases {
			if interrupted.Load() {
				return
			}
			a := h.sample(c.proc)
			res, cpu, err := h.runLoad(c, rate)
			b := h.sample(c.proc)
			if err != nil {
				h.note("fixed-rate %q: %v", c.Label, err)
				continue
			}
			rr := rateRun{Round: r, Result: res}
			if res.Completed > 0 {
				// The CPU window also holds the warm-up, sent at the same rate.
				sent := res.Achieved * (h.opt.warm + h.opt.dur).Seconds()
				rr.ProxyCPUUS = float64(b.proxy-a.proxy) / clockTick * 1e6 / sent
			}
			_, _, rr.Other, _, _, _ = disturbance(a, b, cpu)
			rr.Clean = rr.Other < h.opt.otherMax
			c.Rate = append(c.Rate, rr)
			h.logf("  %d/%d %-20s rate %.0f achieved %.0f  p50 %5.0f µs  p99 %6.0f µs  p99.9 %6.0f µs  errors %d",
				r, h.opt.runs, c.Label, rate, res.Achieved, res.P50US, res.P99US, res.P999US, res.Errors)
		}
	}
}

// runLoad runs `bench load` pinned to core 0 and returns its result and CPU ticks.
func (h *harness) runLoad(c *benchCase, rate float64) (rateResult, int64, error) {
	args := []string{"-c", "0", h.binPath("bench"), "load", "-addr", addr(c.port), "-path", c.Path,
		"-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-c", strconv.Itoa(c.Conns),
		"-d", h.opt.dur.String(), "-warmup", h.opt.warm.String()}
	for _, hd := range c.headers {
		args = append(args, "-H", hd)
	}
	cmd := exec.Command("taskset", args...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return rateResult{}, 0, fmt.Errorf("%w: %s", err, firstLines(string(ee.Stderr), 4))
		}
		return rateResult{}, 0, err
	}
	var res rateResult
	if err := jsonUnmarshal(out, &res); err != nil {
		return res, 0, err
	}
	st := cmd.ProcessState
	return res, int64((st.UserTime() + st.SystemTime()) * clockTick / time.Second), nil
}

// checkTelemetry records whether tracing and otel_log really produced output.
func (h *harness) checkTelemetry() {
	usesTracing := false
	for _, c := range h.cases {
		if len(c.Runs) == 0 {
			continue
		}
		for _, p := range h.variants[c.Variant].parts {
			usesTracing = usesTracing || p.name == "tracing"
		}
	}
	if usesTracing {
		resp, err := http.Get("http://" + addr(portSink) + "/count")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n == 0 {
				h.note("tracing was configured (sample_ratio 0.01) but no OTLP export reached the sink: the cost measured for it is that of a tracer that exports nothing")
			} else {
				h.logf("OTLP sink received %d export requests", n)
			}
		}
	}
	for v, n := range h.logBytes {
		if n == 0 {
			h.note("otel_log in %q was configured with a file output but wrote nothing to it", v)
		}
	}
}

// systemInfo records what the figures were measured on.
func systemInfo() map[string]string {
	info := map[string]string{}
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if len(out) == 0 && err != nil { // wrk -v exits 1 after printing its version
			return "unavailable"
		}
		return strings.TrimSpace(firstLines(string(out), 1))
	}
	info["nginx"] = run("nginx", "-v")
	info["haproxy"] = run("haproxy", "-v")
	info["wrk"] = run("wrk", "-v")
	info["go"] = run("go", "version")
	info["kernel"] = run("uname", "-r")
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				info["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		info["loadavg_at_start"] = strings.TrimSpace(string(b))
	}
	return info
}
