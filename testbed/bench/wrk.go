package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript prints wrk's summary as one JSON line (microsecond latencies), which is more precise
// than its human output and needs no text scraping. No request() function: wrk keeps its fast
// static-request path.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.2f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
`

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Bytes      int64   `json:"bytes"`
	ErrConnect int64   `json:"err_connect"`
	ErrRead    int64   `json:"err_read"`
	ErrWrite   int64   `json:"err_write"`
	ErrStatus  int64   `json:"err_status"` // non-2xx/3xx responses
	ErrTimeout int64   `json:"err_timeout"`
	P50US      float64 `json:"p50_us"`
	P90US      float64 `json:"p90_us"`
	P99US      float64 `json:"p99_us"`
	P999US     float64 `json:"p999_us"`
	MaxUS      float64 `json:"max_us"`
	MeanUS     float64 `json:"mean_us"`
	// CPUTicks is wrk's own user+system time.
	CPUTicks int64 `json:"cpu_ticks"`
}

func (r wrkResult) errors() int64 {
	return r.ErrConnect + r.ErrRead + r.ErrWrite + r.ErrStatus + r.ErrTimeout
}

func (r wrkResult) rps() float64 {
	if r.DurationUS == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

func writeWrkScript(dir string) (string, error) {
	p := filepath.Join(dir, "summary.lua")
	return p, os.WriteFile(p, []byte(wrkScript), 0o644)
}

// runWrk runs wrk on cpus against url with keep-alive connections.
func runWrk(cpus, script, url string, conns int, d time.Duration, headers []string) (wrkResult, error) {
	args := []string{"-c", cpus, "wrk", "-t1", "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s", "--timeout", "5s", "-s", script}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	cmd := exec.Command("taskset", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s%s", err, out.String(), errb.String())
	}
	var res wrkResult
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCHJSON "); ok {
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				return res, fmt.Errorf("wrk summary %q: %w", rest, err)
			}
			st := cmd.ProcessState
			res.CPUTicks = int64((st.UserTime() + st.SystemTime()) * clockTick / time.Second)
			return res, nil
		}
	}
	return res, fmt.Errorf("wrk printed no summary: %s%s", out.String(), errb.String())
}
