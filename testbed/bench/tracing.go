package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tracingMain is `bench tracing`: issue 36's two tracing targets on one machine, in one
// interleaved invocation. The same gateway configuration (three `headers` filters and the
// balancer) runs with tracing off and with the bench's tracing block at sample_ratio 1, each
// loaded in turn by wrk at full rate, against a receiver (`bench sink -decode`) that decodes
// every OTLP request it gets. Per round it reports each case's CPU per request, the traced
// case's extra CPU per request over the untraced one, spans per request, and the traced
// gateway's sluice_telemetry_spans_total deltas (queued, exported, dropped_*) beside the spans
// the receiver decoded. Several -sluice binaries (an A/B of a change) each get a traced case in
// every round; the first binary also runs the untraced case.
//
//	bin/bench tracing -rounds 5 -d 10s [-sluice bin/sluice,/tmp/old] [-c 64]
func tracingMain(args []string) error {
	fs := flag.NewFlagSet("tracing", flag.ContinueOnError)
	bins := fs.String("sluice", "bin/sluice", "comma-separated sluice binaries: the first also runs untraced")
	binDir := fs.String("bin", "bin", "folder holding benchupstream and bench")
	rounds := fs.Int("rounds", 3, "rounds (each runs every case once)")
	dur := fs.Duration("d", 10*time.Second, "measured load per run")
	warm := fs.Duration("warmup", 2*time.Second, "load before each measured run")
	conns := fs.Int("c", 64, "wrk connections")
	base := fs.Int("port", 18730, "first of the ports used: upstream +1, receiver +2, gateways +10… (admin +100)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 || *rounds > 20 || *dur < time.Second || *dur > time.Minute {
		return fmt.Errorf("-rounds 1..20 and -d 1s..1m keep the run bounded")
	}
	run, err := os.MkdirTemp("", "sluice-tracing-")
	if err != nil {
		return err
	}
	h := &harness{run: run, opt: options{bin: *binDir}, variants: map[string]sluiceVariant{}}
	defer h.cleanup()
	if h.script, err = writeWrkScript(run); err != nil {
		return err
	}
	upPort, sinkPort := *base+1, *base+2
	// Other benchmarks may run on this machine: refuse ports in use rather than measure them.
	for _, p := range []int{upPort, sinkPort, *base + 10, *base + 110, *base + 11, *base + 111} {
		if portInUse(p) {
			return fmt.Errorf("port %d is in use: choose other ports with -port", p)
		}
	}
	if h.upstream, err = h.start("upstream", "1", nil, h.binPath("benchupstream"), "-listen", addr(upPort)); err != nil {
		return err
	}
	if h.sink, err = h.start("receiver", "0", nil, h.binPath("bench"), "sink", "-decode", "-listen", addr(sinkPort)); err != nil {
		return err
	}
	for _, p := range []int{upPort, sinkPort} {
		if err := waitPort(p, 10*time.Second); err != nil {
			return err
		}
	}

	type tcase struct {
		label  string
		bin    string
		traced bool
		port   int
		proc   *pinned
		cpu    []float64 // µs per request, per round
		rps    []float64
		spans  map[string]float64 // outcome → total over the measured runs
		reqs   int64
		errors int64
	}
	var cases []*tcase
	for i, b := range strings.Split(*bins, ",") {
		name := filepath.Base(b)
		if i == 0 {
			cases = append(cases, &tcase{label: name + " tracing off", bin: b, port: *base + 10})
		}
		cases = append(cases, &tcase{label: name + " sample_ratio 1", bin: b, traced: true, port: *base + 11 + i})
	}
	for _, c := range cases {
		conf := filepath.Join(run, fmt.Sprintf("gw-%d.hcl", c.port))
		if err := os.WriteFile(conf, []byte(tracingHCL(c.port, upPort, sinkPort, c.traced)), 0o644); err != nil {
			return err
		}
		if err := validateSluice(c.bin, conf); err != nil {
			return fmt.Errorf("%s: %w", conf, err)
		}
		if c.proc, err = h.start(fmt.Sprintf("sluice-%d", c.port), "1", nil, c.bin, "run", "-c", conf); err != nil {
			return err
		}
		if err := waitPort(c.port, 10*time.Second); err != nil {
			return fmt.Errorf("%w\n%s", err, c.proc.logTail())
		}
		c.spans = map[string]float64{}
	}
	url := func(c *tcase) string { return "http://" + addr(c.port) + "/" }
	sinkSpans0, err := sinkCount(sinkPort, "spans")
	if err != nil {
		return err
	}
	var received float64
	for r := 1; r <= *rounds; r++ {
		for _, c := range cases {
			if _, err := runWrk("0", h.script, url(c), *conns, *warm, nil); err != nil {
				return err
			}
			var before map[string]float64
			if c.traced {
				if before, err = spanOutcomes(c.port + 100); err != nil {
					return err
				}
			}
			a := h.sample(c.proc)
			w, err := runWrk("0", h.script, url(c), *conns, *dur, nil)
			b := h.sample(c.proc)
			if err != nil {
				return err
			}
			if w.Requests == 0 {
				return fmt.Errorf("%s: no requests completed", c.label)
			}
			cpu := float64(b.proxy-a.proxy) / clockTick * 1e6 / float64(w.Requests)
			c.cpu, c.rps = append(c.cpu, cpu), append(c.rps, w.rps())
			c.reqs += w.Requests
			c.errors += w.errors()
			line := fmt.Sprintf("round %d  %-28s %8.0f rps  %6.2f µs CPU/request", r, c.label, w.rps(), cpu)
			if c.traced {
				after, err := spanOutcomes(c.port + 100)
				if err != nil {
					return err
				}
				for k, v := range after {
					c.spans[k] += v - before[k]
				}
				line += fmt.Sprintf("  %.2f spans/request, dropped %.0f", (after["queued"]-before["queued"]+after["dropped_queue_full"]-before["dropped_queue_full"])/float64(w.Requests),
					after["dropped_queue_full"]-before["dropped_queue_full"])
			}
			h.logf("%s", line)
		}
	}
	// Let the last batches arrive, then count what the receiver decoded.
	time.Sleep(3 * time.Second)
	sinkSpans1, err := sinkCount(sinkPort, "spans")
	if err != nil {
		return err
	}
	received = float64(sinkSpans1 - sinkSpans0)
	bad, _ := sinkCount(sinkPort, "malformed")

	fmt.Printf("\n%d rounds × %s at %d connections, wrk on core 0, gateways and upstream on core 1, receiver (decoding) on core 0\n\n", *rounds, *dur, *conns)
	fmt.Println("| case | rps (median) | CPU µs/request (median) | over tracing off (median of per-round differences) | spans/request | queued | exported | dropped queue full | dropped export failed | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	off := cases[0]
	var queuedAll, exportedAll float64
	for _, c := range cases {
		extra := ""
		if c.traced {
			var d []float64
			for i := range c.cpu {
				d = append(d, c.cpu[i]-off.cpu[i])
			}
			extra = fmt.Sprintf("%+.2f (%+.2f … %+.2f)", median(d), minOf(d), maxOf(d))
		}
		spr, q, e, fq, ff := "", "", "", "", ""
		if c.traced {
			// Spans made per request: those queued and those dropped at the queue. The counters
			// also include the warm-ups' spans still in flight at a boundary, which averages out.
			made := c.spans["queued"] + c.spans["dropped_queue_full"]
			spr = fmt.Sprintf("%.2f", made/float64(c.reqs))
			q, e = fmt.Sprintf("%.0f", c.spans["queued"]), fmt.Sprintf("%.0f", c.spans["exported"])
			fq, ff = fmt.Sprintf("%.0f", c.spans["dropped_queue_full"]), fmt.Sprintf("%.0f", c.spans["dropped_export_failed"])
			queuedAll += c.spans["queued"]
			exportedAll += c.spans["exported"]
		}
		fmt.Printf("| %s | %.0f | %.2f | %s | %s | %s | %s | %s | %s | %d |\n", c.label, median(c.rps), median(c.cpu), extra, spr, q, e, fq, ff, c.errors)
	}
	fmt.Printf("\nreceiver: %.0f spans decoded (warm-ups included), %d malformed; the traced gateways exported %.0f in the measured runs (queued %.0f)\n", received, bad, exportedAll, queuedAll)
	return nil
}

// tracingHCL is the measured gateway: three headers filters (six filter-phase spans), the
// balancer (an upstream span) and, traced, the bench's tracing block at sample_ratio 1.
func tracingHCL(port, upPort, sinkPort int, traced bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server {\n  listen           = %q\n  max_connections  = 20000\n  max_conns_per_ip = 0\n}\n", addr(port))
	fmt.Fprintf(&b, "admin {\n  listen = %q\n}\n", addr(port+100))
	if traced {
		fmt.Fprintf(&b, "telemetry {\n  service_name = \"sluice-bench\"\n  traces {\n    exporter     = \"otlp\"\n    endpoint     = \"http://%s\"\n    sample_ratio = 1\n  }\n}\n", addr(sinkPort))
	}
	fmt.Fprintf(&b, "upstream \"up\" {\n  target {\n    address = %q\n  }\n}\n", addr(upPort))
	b.WriteString("pipeline \"bench\" {\n  match {\n    path_prefix = \"/\"\n  }\n")
	for i := range 3 {
		fmt.Fprintf(&b, "  filter \"headers\" {\n    request_set  = { \"X-Bench-%d\" = \"1\" }\n    response_set = { \"X-Bench-R%d\" = \"1\" }\n  }\n", i, i)
	}
	b.WriteString("  balancer {\n    upstream = upstream.up\n  }\n}\n")
	return b.String()
}

// spanOutcomes reads sluice_telemetry_spans_total by outcome from a gateway's admin API.
func spanOutcomes(adminPort int) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr(adminPort) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `sluice_telemetry_spans_total{outcome="`)
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", sc.Text(), err)
		}
		out[k] = n
	}
	return out, sc.Err()
}

// sinkCount reads one of the receiver's counters (/count, /spans, /malformed).
func sinkCount(port int, what string) (int64, error) {
	resp, err := http.Get("http://" + addr(port) + "/" + what)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
