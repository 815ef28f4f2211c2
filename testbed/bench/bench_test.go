package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestParseProcStat(t *testing.T) {
	in := "cpu  100 5 50 1000 10 1 4 7 0 0\ncpu0 60 5 20 500 5 1 2 3 0 0\ncpu1 40 0 30 500 5 0 2 4 0 0\nintr 1 2 3\n"
	st, err := parseProcStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st[-1], (cpuStat{busy: 100 + 5 + 50 + 1 + 4, idle: 1010, steal: 7}); got != want {
		t.Errorf("total = %+v, want %+v", got, want)
	}
	if got := st[1].busy; got != 72 {
		t.Errorf("cpu1 busy = %d, want 72", got)
	}
	if _, err := parseProcStat([]byte("intr 1\n")); err == nil {
		t.Error("no cpu lines: want an error")
	}
}

func TestOwnProcessAccounting(t *testing.T) {
	// Burn some CPU, then check that /proc/self is read and grows.
	pid := descendants(1)[0]
	if pid != 1 {
		t.Fatalf("descendants(1) starts with %d", pid)
	}
	a := treeTimes(selfPID())
	end := time.Now().Add(150 * time.Millisecond)
	for x := 0; time.Now().Before(end); x++ {
		_ = x * x
	}
	b := treeTimes(selfPID())
	if b.ticks <= a.ticks || a.procs < 1 {
		t.Errorf("CPU ticks did not grow: %+v → %+v", a, b)
	}
	if treeRSS(selfPID()) <= 0 {
		t.Error("no RSS for this process")
	}
}

func TestMedianAndSummary(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	c := &benchCase{Runs: []runRecord{
		{RPS: 100, ProxyCPUUS: 10, Clean: true},
		{RPS: 10, ProxyCPUUS: 99, Clean: false}, // disturbed: left out
		{RPS: 120, ProxyCPUUS: 12, Clean: true},
	}}
	s := summarize(c)
	if s.RPS != 110 || s.CPU != 11 || s.Clean != 2 || s.Total != 3 {
		t.Errorf("summary = %+v", s)
	}
}

// TestPairedCost checks the filter costs of cases loaded at once with the empty pipeline: the
// median of per-run differences over the undisturbed runs, and the budget's verdict.
func TestPairedCost(t *testing.T) {
	jwt := &benchCase{Label: "sluice +jwt", Group: pairedGroup, Base: "sluice empty", Runs: []runRecord{
		{RPS: 90, BaseRPS: 100, ProxyCPUUS: 41, BaseCPUUS: 40, Clean: true},
		{RPS: 80, BaseRPS: 100, ProxyCPUUS: 52, BaseCPUUS: 50, Clean: true},
		{RPS: 50, BaseRPS: 100, ProxyCPUUS: 90, BaseCPUUS: 40, Clean: false}, // disturbed: left out
		{RPS: 95, BaseRPS: 100, ProxyCPUUS: 45.5, BaseCPUUS: 45, Clean: true},
	}}
	pc := pairedCost(jwt)
	if pc.over != 1 || pc.lo != 0.5 || pc.hi != 2 || pc.rounds != 3 || pc.clean != 3 || pc.base != 45 || pc.rps != 0.9 {
		t.Errorf("pairedCost = %+v", pc)
	}
	control := &benchCase{Label: controlLabel, Group: pairedGroup, Base: "sluice empty", Runs: []runRecord{
		{RPS: 100, BaseRPS: 100, ProxyCPUUS: 40.2, BaseCPUUS: 40, Clean: true},
	}}
	rl := &benchCase{Label: "sluice +rate_limit", Group: pairedGroup, Base: "sluice empty", Runs: []runRecord{
		{RPS: 100, BaseRPS: 100, ProxyCPUUS: 42, BaseCPUUS: 40, Clean: true},
		{RPS: 100, BaseRPS: 100, ProxyCPUUS: 43, BaseCPUUS: 40, Clean: true},
	}}
	var b strings.Builder
	h := &harness{}
	// A slow machine: nginx at 2.5× the reference CPU per request.
	nginx := &benchCase{Label: "nginx", Group: "64 conns, 64 B", Runs: []runRecord{{RPS: 100, ProxyCPUUS: 39.75, Clean: true}}}
	h.budgetSection(&b, map[string][]*benchCase{pairedGroup: {control, jwt, rl}, "64 conns, 64 B": {nginx}})
	out := b.String()
	for _, want := range []string{
		"nginx took 39.8 µs of CPU per request at 64 connections, 2.50× the 15.9 µs",
		"read the costs below as upper bounds",
		"| none (control: a second empty pipeline) | 40.0 | 40.2 | +0.20 |",
		"| jwt | 45.0 | 45.5 | +1.00 | +0.50 … +2.00 | 0.90 | 3 | 1 | met |",
		"| rate_limit | 40.0 | 42.5 | +2.50 | +2.00 … +3.00 | 1.00 | 2 | 0.5 | not met |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("filter costs lack %q:\n%s", want, out)
		}
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	svg := chartSVG("a <title> & more", []panel{{title: "64 conns", bars: []bar{
		{label: "nginx", kind: "nginx", rps: 40000, cpu: 16}, {label: "sluice <empty>", kind: "sluice", rps: 38000, cpu: 18},
	}}})
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects != 1+4 {
		t.Errorf("%d rects, want a background and 4 bars", rects)
	}
}

func TestMintHS256(t *testing.T) {
	tok, err := mintHS256("secret-secret-secret-secret-1234", "iss", "aud", "sub", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	m := hmac.New(sha256.New, []byte("secret-secret-secret-secret-1234"))
	m.Write([]byte(parts[0] + "." + parts[1]))
	if got := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); got != parts[2] {
		t.Error("signature does not verify")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil || claims["sub"] != "sub" || claims["exp"].(float64) <= float64(time.Now().Unix()) {
		t.Errorf("claims %s (%v)", raw, err)
	}
}

func TestSluiceVariantHCL(t *testing.T) {
	v := sluiceVariant{name: "p2c", policy: "p2c_ewma", targets: 3, extra: compressBlock(6)}
	src := v.hcl(18123)
	for _, want := range []string{`listen           = "127.0.0.1:18123"`, `listen = "127.0.0.1:18223"`, `policy = "p2c_ewma"`,
		`address = "127.0.0.1:18003"`, `gzip = 6`, "upstream = upstream.up"} {
		if !strings.Contains(src, want) {
			t.Errorf("config lacks %q:\n%s", want, src)
		}
	}
}

// TestFixedRate runs the load generator against a local fasthttp server: the rate is held and
// latencies are measured.
func TestFixedRate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if string(c.Request.Header.Peek("X-Test")) != "1" {
			c.SetStatusCode(400)
			return
		}
		c.SetBodyString("ok")
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	res, err := fixedRate(ln.Addr().String(), "/", []string{"X-Test: 1"}, 400, 4, 100*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Completed < 150 || res.Completed > 250 {
		t.Errorf("completed %d (want about 200), errors %d", res.Completed, res.Errors)
	}
	if res.P50US <= 0 || res.P99US < res.P50US || res.MaxUS < res.P99US {
		t.Errorf("latencies %+v", res)
	}
	// Wrong header: every response is an error.
	res, err = fixedRate(ln.Addr().String(), "/", nil, 200, 2, 0, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != 0 || res.Errors == 0 {
		t.Errorf("400s counted as completed: %+v", res)
	}
}
