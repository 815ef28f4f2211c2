package main

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
)

// h2loadOutput is what h2load 1.52 (Debian 12) prints for a timing-based run.
const h2loadOutput = `finished in 1.01s, 11477.00 req/s, 964.40KB/s
requests: 11477 total, 11485 started, 11477 done, 11470 succeeded, 7 failed, 0 errored, 0 timeout
status codes: 11481 2xx, 0 3xx, 2 4xx, 1 5xx
traffic: 964.40KB (987546) total, 45.07KB (46152) headers (space savings 95.04%), 717.31KB (734528) data
                     min         max         mean         sd        +/- sd
time for request:       34us     38.35ms       681us      1.69ms    90.65%
time for connect:       75us       134us       112us        26us    75.00%
`

func TestParseH2load(t *testing.T) {
	r, err := parseH2load(h2loadOutput, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 11467 || r.DurationUS != 1010000 || r.ErrRead != 7 || r.ErrStatus != 3 || r.P50US != 681 || r.P99US != 0 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseH2load("starting benchmark...\n", nil); err == nil {
		t.Error("no summary: want an error")
	}
	for in, want := range map[string]float64{"34us": 34, "38.35ms": 38350, "1.5s": 1.5e6} {
		if got := durUS(in); got != want {
			t.Errorf("durUS(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestTLSRequestResumes: the handshake load's client makes full handshakes without a session
// cache and resumed ones with it, against a Go TLS server holding the benchmark's certificate.
func TestTLSRequestResumes(t *testing.T) {
	dir := t.TempDir()
	if err := writeCert(dir); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := certFiles(dir)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 64)))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	address := ln.Addr().String()
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	buf := make([]byte, 4096)
	for _, resume := range []bool{false, true} {
		cfg := &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tls.X25519}, MinVersion: tls.VersionTLS13}
		if resume {
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		}
		var resumed int
		for range 3 {
			did, err := tlsRequest(address, cfg, req, buf)
			if err != nil {
				t.Fatal(err)
			}
			if did {
				resumed++
			}
		}
		if want := map[bool]int{false: 0, true: 2}[resume]; resumed != want {
			t.Errorf("resume %v: %d of 3 handshakes resumed, want %d", resume, resumed, want)
		}
	}
}

// TestH2TLSVariantsLoad: the HTTP/2 and TLS variants' configurations are valid Sluice HCL, so that
// the benchmark does not skip Sluice's rows for a configuration that went stale.
func TestH2TLSVariantsLoad(t *testing.T) {
	dir := t.TempDir()
	if err := writeCert(dir); err != nil {
		t.Fatal(err)
	}
	h2c, tlsv := h2tlsVariants(dir)
	for _, v := range []sluiceVariant{h2c, tlsv, grpcVariant()} {
		src := v.hcl(18150)
		cfg, diags := hcl.Load(filepath.Join(dir, v.name+".hcl"), []byte(src), filters.Builtin())
		if diags.HasErrors() {
			var b strings.Builder
			_ = cfg.WriteDiagnostics(&b, diags)
			t.Errorf("variant %s does not load:\n%s\n%s", v.name, b.String(), src)
		}
	}
}

// TestH2TLSReport: the HTTP/2 group's table is read against Go's ceiling, the gRPC group's
// against the direct calls, and the targets of issues 27 and 29 are drawn from the groups.
func TestH2TLSReport(t *testing.T) {
	run := func(round int, rps, cpu float64) runRecord {
		return runRecord{Round: round, RPS: rps, ProxyCPUUS: cpu, Clean: true}
	}
	mk := func(label, group, tool string, tls bool, rps, cpu float64) *benchCase {
		return &benchCase{Label: label, Group: group, Tool: tool, TLS: tls, Runs: []runRecord{run(1, rps, cpu), run(2, rps, cpu)}}
	}
	h2 := "HTTP/2 h2c"
	hs := "TLS 1.3 full handshake"
	g := "gRPC unary"
	byGroup := map[string][]*benchCase{
		h2: {mk("go h2 ceiling", h2, toolH2load, false, 30000, 30), mk("nginx", h2, toolH2load, false, 80000, 12), mk("sluice empty", h2, toolH2load, false, 28000, 33)},
		hs: {mk("nginx", hs, toolTLSFull, true, 2000, 400), mk("sluice empty", hs, toolTLSFull, true, 1900, 420)},
		g:  {mk("grpc direct", g, toolH2GRPC, false, 20000, 40), mk("nginx", g, toolH2GRPC, false, 10000, 30), mk("sluice empty", g, toolH2GRPC, false, 12000, 35)},
	}
	var b strings.Builder
	groupTable(&b, byGroup[h2])
	if !strings.Contains(b.String(), "÷ ceiling") || !strings.Contains(b.String(), "mean µs") || !strings.Contains(b.String(), "| sluice empty | 28000 | 0.93 | 0.35 |") {
		t.Errorf("HTTP/2 table:\n%s", b.String())
	}
	b.Reset()
	groupTable(&b, byGroup[g])
	if !strings.Contains(b.String(), "÷ direct") || !strings.Contains(b.String(), "| sluice empty | 12000 | 0.60 | 1.20 |") {
		t.Errorf("gRPC table:\n%s", b.String())
	}
	b.Reset()
	h2tlsTargets(&b, byGroup)
	for _, want := range []string{
		"HTTP/2 h2c: RPS ≥ 0.9 × Go's HTTP/2 ceiling | 0.93 | **met** |",
		"TLS 1.3 full handshake: handshakes/s ≥ 0.9 × nginx | 0.95 | **met** |",
		"gRPC unary: calls/s through Sluice ÷ direct (reported) | 0.60 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("targets lack %q:\n%s", want, b.String())
		}
	}
}
