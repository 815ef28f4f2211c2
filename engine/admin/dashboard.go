package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/valyala/fasthttp"
)

// The dashboard's JSON API, /api/v1/…, documented in README.md ("Dashboard"). Live figures
// (rates, error ratios, percentiles) are over the last rateWindow, from the counters the
// telemetry observer keeps (engine/telemetry/dashstats.go), sampled once a second.

const (
	sampleEvery = time.Second
	rateWindow  = 10 * time.Second
	// maxSSEClients bounds the open event streams; more get 503.
	maxSSEClients = 16
)

// sample is the counters of every pipeline at one time.
type sample struct {
	at    time.Time
	pipes map[string]telemetry.PipelineCounters
	// The balancer's sluice_upstream_failures_total and sluice_upstream_ejections_total, by
	// upstream, target and reason; read here, once a second whoever is watching, so neither
	// /api/v1/upstreams nor each event stream gathers the registry itself.
	failures, ejections map[reasonKey]uint64
}

// reasonKey is one series of a by-reason counter: upstream, target, reason.
type reasonKey [3]string

// reasonCounts reads the upstreams' failure and ejection counters from the registry.
func reasonCounts() (failures, ejections map[reasonKey]uint64) {
	failures, ejections = map[reasonKey]uint64{}, map[reasonKey]uint64{}
	// A failed collector (an error) still leaves the others' families; show what there is.
	mfs, _ := metrics.Dashboard.Gather() // the two families only, not every collector
	for _, mf := range mfs {
		var into map[reasonKey]uint64
		switch mf.GetName() {
		case "sluice_upstream_failures_total":
			into = failures
		case "sluice_upstream_ejections_total":
			into = ejections
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			var k reasonKey
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "upstream":
					k[0] = l.GetValue()
				case "target":
					k[1] = l.GetValue()
				case "reason":
					k[2] = l.GetValue()
				}
			}
			into[k] += uint64(m.GetCounter().GetValue())
		}
	}
	return failures, ejections
}

// sampler keeps the samples of the last rateWindow.
type sampler struct {
	mu      sync.Mutex
	samples []sample
}

func (s *Server) takeSample() {
	gw := s.current()
	smp := sample{at: time.Now(), pipes: map[string]telemetry.PipelineCounters{}}
	smp.failures, smp.ejections = reasonCounts()
	for _, p := range gw.Pipelines {
		if pc, ok := telemetry.PipelineStats(p); ok {
			smp.pipes[p.Name] = pc
		}
	}
	s.samp.mu.Lock()
	defer s.samp.mu.Unlock()
	s.samp.samples = append(s.samp.samples, smp)
	// Keep one sample older than the window, the base of the rates.
	for len(s.samp.samples) > 2 && smp.at.Sub(s.samp.samples[1].at) >= rateWindow {
		s.samp.samples = s.samp.samples[1:]
	}
}

// window returns the oldest and newest samples (ok false before two exist).
func (s *Server) window() (old, cur sample, ok bool) {
	s.samp.mu.Lock()
	defer s.samp.mu.Unlock()
	if len(s.samp.samples) < 2 {
		return sample{}, sample{}, false
	}
	return s.samp.samples[0], s.samp.samples[len(s.samp.samples)-1], true
}

// latest returns the newest sample (ok false before the first).
func (s *Server) latest() (cur sample, ok bool) {
	s.samp.mu.Lock()
	defer s.samp.mu.Unlock()
	if len(s.samp.samples) == 0 {
		return sample{}, false
	}
	return s.samp.samples[len(s.samp.samples)-1], true
}

// sampleLoop samples until the server shuts down.
func (s *Server) sampleLoop() {
	tk := time.NewTicker(sampleEvery)
	defer tk.Stop()
	s.takeSample()
	for {
		select {
		case <-s.done:
			return
		case <-tk.C:
			s.takeSample()
		}
	}
}

// delta is cur - old, 0 when the counter went back (the pipeline was rebuilt by a reload).
func delta(cur, old uint64) uint64 {
	if cur < old {
		return cur
	}
	return cur - old
}

// PipelineLive is a pipeline's figures over the last window.
type PipelineLive struct {
	Name      string   `json:"name"`
	Requests  uint64   `json:"requests"` // since the pipeline was built
	RPS       float64  `json:"rps"`
	ErrorRate float64  `json:"error_rate"` // 5xx share of the window's responses
	P50MS     *float64 `json:"p50_ms"`     // null: no request in the window
	P99MS     *float64 `json:"p99_ms"`
}

func total(pc telemetry.PipelineCounters) uint64 {
	var n uint64
	for _, v := range pc.ByClass {
		n += v
	}
	return n
}

func (s *Server) live(name string) PipelineLive {
	pl := PipelineLive{Name: name}
	old, cur, ok := s.window()
	if !ok {
		return pl
	}
	c, cok := cur.pipes[name]
	if !cok {
		return pl
	}
	pl.Requests = total(c)
	o := old.pipes[name]
	secs := cur.at.Sub(old.at).Seconds()
	n := delta(total(c), total(o))
	if secs > 0 {
		pl.RPS = round(float64(n) / secs)
	}
	if n > 0 {
		pl.ErrorRate = round(float64(delta(c.ByClass[5], o.ByClass[5])) / float64(n))
	}
	buckets := make([]uint64, len(c.Latency))
	for i := range c.Latency {
		var ov uint64
		if i < len(o.Latency) {
			ov = o.Latency[i]
		}
		buckets[i] = delta(c.Latency[i], ov)
	}
	pl.P50MS, pl.P99MS = quantile(buckets, 0.5), quantile(buckets, 0.99)
	return pl
}

// quantile estimates the q-quantile from bucket counts (linear within a bucket); nil if empty.
func quantile(b []uint64, q float64) *float64 {
	var n uint64
	for _, v := range b {
		n += v
	}
	if n == 0 {
		return nil
	}
	rank := q * float64(n)
	var seen float64
	bounds := telemetry.LatencyBoundsMS
	for i, v := range b {
		if seen+float64(v) >= rank && v > 0 {
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			hi := lo * 2 // above the last bound: a guess, shown as such by its size
			if i < len(bounds) {
				hi = bounds[i]
			}
			x := round(lo + (hi-lo)*(rank-seen)/float64(v))
			return &x
		}
		seen += float64(v)
	}
	x := bounds[len(bounds)-1]
	return &x
}

func round(f float64) float64 { return math.Round(f*1000) / 1000 }

// Overview is GET /api/v1/overview.
type Overview struct {
	Version         string                `json:"version"`
	Started         time.Time             `json:"started"`
	UptimeSeconds   int64                 `json:"uptime_seconds"`
	InFlight        int64                 `json:"in_flight"`
	OpenConnections int                   `json:"open_connections"`
	RPS             float64               `json:"rps"`
	ErrorRate       float64               `json:"error_rate"`
	Pipelines       []PipelineLive        `json:"pipelines"`
	Upstreams       int                   `json:"upstreams"`
	Unhealthy       []string              `json:"unhealthy_upstreams"`
	Tracing         bool                  `json:"tracing"`
	LastReload      *telemetry.ReloadInfo `json:"last_reload"`
	WindowSeconds   int                   `json:"window_seconds"`
}

func (s *Server) overview() Overview {
	gw := s.current()
	ov := Overview{Version: telemetry.Version, Started: s.started.UTC(), UptimeSeconds: int64(time.Since(s.started) / time.Second),
		InFlight: gw.InFlight(), Pipelines: []PipelineLive{}, Unhealthy: []string{}, Upstreams: len(gw.Upstreams),
		LastReload: telemetry.LastReload(), WindowSeconds: int(rateWindow / time.Second)}
	if f := s.conns.Load(); f != nil {
		ov.OpenConnections = (*f)()
	}
	if t := telemetry.FromObserver(gw.Observer()); t != nil {
		ov.Tracing = t.Tracing()
	}
	var errs float64
	for _, p := range gw.Pipelines {
		pl := s.live(p.Name)
		ov.Pipelines = append(ov.Pipelines, pl)
		ov.RPS += pl.RPS
		errs += pl.ErrorRate * pl.RPS
	}
	if ov.RPS > 0 {
		ov.ErrorRate = round(errs / ov.RPS)
	}
	ov.RPS = round(ov.RPS)
	for name, u := range gw.Upstreams {
		if st, ok := u.(engine.UpstreamStatus); ok && !st.Healthy() {
			ov.Unhealthy = append(ov.Unhealthy, name)
		}
	}
	sort.Strings(ov.Unhealthy)
	return ov
}

// FilterView is one filter of a pipeline, with its figures over the window.
type FilterView struct {
	Index          int               `json:"index"` // -1: the terminal (kind "balancer" or "route")
	Kind           string            `json:"kind"`
	Label          string            `json:"label"`
	Requests       uint64            `json:"requests"` // request phases since the pipeline was built
	RPS            float64           `json:"rps"`
	AvgRequestMS   *float64          `json:"avg_request_ms"`
	AvgResponseMS  *float64          `json:"avg_response_ms"`
	RequestOnly    bool              `json:"request_only,omitempty"` // the filter has no response phase (engine.RequestOnly)
	Continued      uint64            `json:"continued"`
	Answered       map[string]uint64 `json:"answered"` // "4xx": n
	AnsweredWindow uint64            `json:"answered_window"`
}

// PipelineView is one pipeline of GET /api/v1/pipelines.
type PipelineView struct {
	PipelineLive
	Match       any          `json:"match"`
	StripPrefix string       `json:"strip_prefix,omitempty"`
	Upstream    string       `json:"upstream"`
	Filters     []FilterView `json:"filters"`
	Balancer    FilterView   `json:"balancer"`
}

func (s *Server) pipelines() []PipelineView {
	gw := s.current()
	old, cur, ok := s.window()
	out := []PipelineView{}
	for _, p := range gw.Pipelines {
		pv := PipelineView{PipelineLive: s.live(p.Name), Match: Redact(p.Match), StripPrefix: p.StripPrefix,
			Upstream: p.Upstream, Filters: []FilterView{}}
		pc, has := telemetry.PipelineStats(p)
		var oc, cc telemetry.PipelineCounters
		if ok {
			oc, cc = old.pipes[p.Name], cur.pipes[p.Name]
		}
		secs := cur.at.Sub(old.at).Seconds()
		view := func(i int, kind, label string, now telemetry.StageCounters, o, c *telemetry.StageCounters) FilterView {
			fv := FilterView{Index: i, Kind: kind, Label: label, Requests: now.Requests, Answered: map[string]uint64{}}
			var answered uint64
			for k, v := range now.Answered {
				if v > 0 {
					name := "other"
					if k > 0 {
						name = strconv.Itoa(k) + "xx"
					}
					fv.Answered[name] = v
				}
				answered += v
			}
			fv.Continued = now.Requests - min(answered, now.Requests)
			if o != nil && c != nil && secs > 0 {
				n := delta(c.Requests, o.Requests)
				fv.RPS = round(float64(n) / secs)
				if n > 0 {
					x := round(float64(delta(c.RequestNanos, o.RequestNanos)) / float64(n) / 1e6)
					fv.AvgRequestMS = &x
				}
				if m := delta(c.Responses, o.Responses); m > 0 {
					x := round(float64(delta(c.ResponseNanos, o.ResponseNanos)) / float64(m) / 1e6)
					fv.AvgResponseMS = &x
				}
				for k := range c.Answered {
					fv.AnsweredWindow += delta(c.Answered[k], o.Answered[k])
				}
			}
			return fv
		}
		stages := p.Stages()
		for i := range stages {
			var now telemetry.StageCounters
			if has && i < len(pc.Stages) {
				now = pc.Stages[i]
			}
			var o, c *telemetry.StageCounters
			if i < len(oc.Stages) && i < len(cc.Stages) {
				o, c = &oc.Stages[i], &cc.Stages[i]
			}
			fv := view(i, stages[i].Kind, stages[i].Label(), now, o, c)
			fv.RequestOnly = stages[i].RequestOnly()
			pv.Filters = append(pv.Filters, fv)
		}
		var o, c *telemetry.StageCounters
		if ok && len(cc.Latency) > 0 {
			o, c = &oc.Terminal, &cc.Terminal
		}
		pv.Balancer = view(-1, p.TerminalKind(), p.TerminalKind(), pc.Terminal, o, c)
		out = append(out, pv)
	}
	return out
}

// UpstreamView is one upstream of GET /api/v1/upstreams: its balancer's status (targets' health,
// outlier ejection, in-flight, EWMA latency, failures), each target with its failures and
// ejections by reason, in total and over the last window.
type UpstreamView struct {
	Name          string `json:"name"`
	Healthy       bool   `json:"healthy"`
	Status        any    `json:"status"`
	WindowSeconds int    `json:"window_seconds"` // of failures_by_reason_window
}

func (s *Server) upstreams() []UpstreamView {
	gw := s.current()
	cur, hasCur := s.latest()
	old, _, hasOld := s.window()
	out := []UpstreamView{}
	for name, u := range gw.Upstreams {
		uv := UpstreamView{Name: name, Healthy: true, WindowSeconds: int(rateWindow / time.Second)}
		if st, ok := u.(engine.UpstreamStatus); ok {
			uv.Healthy, uv.Status = st.Healthy(), st.Status()
			if hasCur {
				uv.Status = withReasons(name, uv.Status, cur, old, hasOld)
			}
		}
		out = append(out, uv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// withReasons adds to each target of an upstream's status (an object with "targets", each with
// "address", as the balancer's Status is) failures_by_reason and ejections_by_reason (totals)
// and failures_by_reason_window (the change since old). The status is the balancer's own type,
// which this package does not import, so it goes through its JSON form; a status of another
// shape is returned as it was.
func withReasons(upstream string, status any, cur, old sample, hasOld bool) any {
	b, err := json.Marshal(status)
	if err != nil {
		return status
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // keep uint64 counters exact
	if d.Decode(&m) != nil {
		return status
	}
	targets, ok := m["targets"].([]any)
	if !ok {
		return status
	}
	for _, t := range targets {
		tm, ok := t.(map[string]any)
		if !ok {
			continue
		}
		addr, _ := tm["address"].(string)
		total, recent, ejections := map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
		for k, v := range cur.failures {
			if k[0] != upstream || k[1] != addr || v == 0 {
				continue
			}
			total[k[2]] = v
			if hasOld {
				if d := delta(v, old.failures[k]); d > 0 {
					recent[k[2]] = d
				}
			}
		}
		for k, v := range cur.ejections {
			if k[0] == upstream && k[1] == addr && v > 0 {
				ejections[k[2]] = v
			}
		}
		tm["failures_by_reason"], tm["failures_by_reason_window"], tm["ejections_by_reason"] = total, recent, ejections
	}
	return m
}

// WasmFilter is one Wasm filter's figures in GET /api/v1/wasm.
type WasmFilter struct {
	Pipeline      string             `json:"pipeline"`
	Filter        string             `json:"filter"`
	Metrics       map[string]float64 `json:"metrics"` // its sluice_wasm_* series, by name
	AvgRequestMS  *float64           `json:"avg_request_ms"`
	AvgResponseMS *float64           `json:"avg_response_ms"`
}

// wasm reads the Wasm filters' own metrics (calls, traps, timeouts, instances, pool waits) from
// the registry, and the time of the `wasm` stages from the dashboard's counters.
func (s *Server) wasm() ([]WasmFilter, error) {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		return nil, err
	}
	rows := map[[2]string]*WasmFilter{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "sluice_wasm_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var k [2]string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "pipeline":
					k[0] = l.GetValue()
				case "filter":
					k[1] = l.GetValue()
				}
			}
			if k[1] == "" {
				continue // a process-wide series (the code cache)
			}
			r := rows[k]
			if r == nil {
				r = &WasmFilter{Pipeline: k[0], Filter: k[1], Metrics: map[string]float64{}}
				rows[k] = r
			}
			r.Metrics[strings.TrimPrefix(name, "sluice_wasm_")] += metricValue(mf.GetType(), m)
		}
	}
	for _, pv := range s.pipelines() {
		for _, f := range pv.Filters {
			if f.Kind != "wasm" {
				continue
			}
			_, name, _ := strings.Cut(f.Label, ":")
			if r := rows[[2]string{pv.Name, name}]; r != nil {
				r.AvgRequestMS, r.AvgResponseMS = f.AvgRequestMS, f.AvgResponseMS
			} else if r := rows[[2]string{pv.Name, f.Label}]; r != nil {
				r.AvgRequestMS, r.AvgResponseMS = f.AvgRequestMS, f.AvgResponseMS
			}
		}
	}
	out := []WasmFilter{}
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pipeline != out[j].Pipeline {
			return out[i].Pipeline < out[j].Pipeline
		}
		return out[i].Filter < out[j].Filter
	})
	return out, nil
}

func metricValue(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// handleAPI serves /api/v1/…; how is how the caller authenticated.
func (s *Server) handleAPI(c *fasthttp.RequestCtx, path string, how authKind) {
	rest := strings.TrimPrefix(path, "/api/v1/")
	if rest == "reload" {
		if !c.IsPost() {
			c.Response.Header.Set("Allow", "POST")
			engine.WriteError(&c.Response, fasthttp.StatusMethodNotAllowed)
			return
		}
		if !s.checkCSRF(c, how) {
			writeJSON(c, fasthttp.StatusForbidden, map[string]any{"error": "missing or wrong " + csrfHeader + " (GET /api/v1/session gives it)"})
			return
		}
		s.handleReload(c)
		return
	}
	if !c.IsGet() && !c.IsHead() {
		c.Response.Header.Set("Allow", "GET, HEAD")
		engine.WriteError(&c.Response, fasthttp.StatusMethodNotAllowed)
		return
	}
	gw := s.current()
	tel := telemetry.FromObserver(gw.Observer())
	switch {
	case rest == "session":
		auth := map[authKind]string{authNone: "none", authBearer: "bearer", authCookie: "cookie"}[how]
		writeJSON(c, fasthttp.StatusOK, map[string]any{"auth": auth, "csrf_token": s.csrfToken(c, how)})
	case rest == "overview":
		writeJSON(c, fasthttp.StatusOK, s.overview())
	case rest == "pipelines":
		writeJSON(c, fasthttp.StatusOK, s.pipelines())
	case rest == "upstreams":
		writeJSON(c, fasthttp.StatusOK, s.upstreams())
	case rest == "config":
		writeJSON(c, fasthttp.StatusOK, Redact(gw.Spec))
	case rest == "limits":
		if tel == nil {
			writeJSON(c, fasthttp.StatusOK, telemetry.EdgeReport{TopRefused: []telemetry.RefusedKey{}, RecentAuth: []telemetry.AuthEvent{}})
			return
		}
		writeJSON(c, fasthttp.StatusOK, tel.Edge(intArg(c, "limit", 20)))
	case rest == "wasm":
		rows, err := s.wasm()
		if err != nil {
			engine.WriteError(&c.Response, fasthttp.StatusInternalServerError)
			return
		}
		writeJSON(c, fasthttp.StatusOK, rows)
	case rest == "traces":
		if tel == nil {
			writeJSON(c, fasthttp.StatusOK, map[string]any{"traces": []telemetry.TraceSummary{}})
			return
		}
		a := c.QueryArgs()
		q := telemetry.TraceQuery{TraceID: string(a.Peek("trace_id")), Pipeline: string(a.Peek("pipeline")),
			Path: string(a.Peek("path")), Reason: string(a.Peek("reason")), Status: intArg(c, "status", 0), Limit: intArg(c, "limit", 100)}
		cfg := tel.Recent().Config()
		writeJSON(c, fasthttp.StatusOK, map[string]any{"traces": orEmpty(tel.Recent().List(q)),
			"ring": map[string]any{"size": cfg.Size, "slow_ms": cfg.Slow.D().Milliseconds(), "client_errors": cfg.ClientErrors, "collector_ui": cfg.CollectorUI != ""}})
	case strings.HasPrefix(rest, "traces/"):
		if tel == nil {
			engine.WriteError(&c.Response, fasthttp.StatusNotFound)
			return
		}
		d, ok := tel.Recent().Get(strings.TrimPrefix(rest, "traces/"))
		if !ok {
			writeJSON(c, fasthttp.StatusNotFound, map[string]any{"error": "no such trace in the ring (it keeps sampled, error and slow requests only, and the latest of each)"})
			return
		}
		writeJSON(c, fasthttp.StatusOK, d)
	case rest == "events":
		s.serveEvents(c)
	default:
		engine.WriteError(&c.Response, fasthttp.StatusNotFound)
	}
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func intArg(c *fasthttp.RequestCtx, name string, def int) int {
	v := c.QueryArgs().Peek(name)
	if len(v) == 0 {
		return def
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return def
	}
	return n
}

// serveEvents streams a snapshot (overview, pipelines, upstreams) as a server-sent event every
// second until the client goes or the admin server shuts down.
func (s *Server) serveEvents(c *fasthttp.RequestCtx) {
	if s.sse.Add(1) > maxSSEClients {
		s.sse.Add(-1)
		engine.WriteError(&c.Response, fasthttp.StatusServiceUnavailable)
		return
	}
	c.SetContentType("text/event-stream")
	c.Response.Header.Set("Cache-Control", "no-store")
	c.Response.Header.Set("X-Accel-Buffering", "no")
	done := s.done
	c.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.sse.Add(-1)
		tk := time.NewTicker(sampleEvery)
		defer tk.Stop()
		for {
			b, err := json.Marshal(map[string]any{"overview": s.overview(), "pipelines": s.pipelines(), "upstreams": s.upstreams()})
			if err != nil {
				return
			}
			// JSON has no raw newline, so one data line carries it.
			if _, err := w.WriteString("event: snapshot\ndata: "); err != nil {
				return
			}
			w.Write(b)
			w.WriteString("\n\n")
			if w.Flush() != nil {
				return
			}
			select {
			case <-done:
				return
			case <-tk.C:
			}
		}
	})
}
