package main

// The HTTP/2 and TLS rows of the benchmark: h2load against Sluice, nginx and Go's bare HTTP/2
// server (the ceiling of the stack Sluice's HTTP/2 side is built on), and TLS keep-alive requests,
// full and resumed handshakes against Sluice and nginx with the same ECDSA P-256 certificate.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	portCeiling    = 18105 // h2ceiling, h2c; its TLS listener on portCeiling+3
	portNginxH2c   = 18106 // nginx `listen … http2` (h2c prior knowledge)
	portNginxTLS   = 18107 // nginx `listen … ssl http2`: HTTP/1.1 and h2 by ALPN
	portCeilingTLS = portCeiling + 3
)

// Tools a case can be loaded with (benchCase.Tool); "" is wrk.
const (
	toolH2load    = "h2load"     // 64 connections × 10 streams, HTTP/2
	toolTLSFull   = "tls-full"   // bench tlsload: a full handshake per request
	toolTLSResume = "tls-resume" // bench tlsload: a resumed handshake per request
)

// h2Streams is how many streams each h2load connection keeps open (issue 27: 64 × 10).
const h2Streams = 10

// handshakeConns is the concurrency of the handshake load: enough to keep the server's core busy
// with the client on the other core.
const handshakeConns = 16

// Key exchange groups the handshake load offers (one at a time, so the server cannot pick another).
const (
	groupX25519 = "x25519"
	groupHybrid = "x25519mlkem768"
)

// certFiles are the benchmark's ECDSA P-256 certificate and key, written into the run folder and
// served by every TLS case (Sluice, nginx, the ceiling).
func certFiles(run string) (cert, key string) {
	return filepath.Join(run, "bench-cert.pem"), filepath.Join(run, "bench-key.pem")
}

// writeCert makes a self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost.
func writeCert(run string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	cert, key := certFiles(run)
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

// nginxH2TLSServers are the nginx servers of the HTTP/2 and TLS cases: h2c, and TLS with HTTP/2
// by ALPN (Debian's nginx 1.22 spells both as a `listen` parameter), with TLS settings like Go's
// defaults (TLS 1.2 and 1.3; X25519 first; session tickets on, so TLS 1.3 clients resume).
func nginxH2TLSServers(run string) string {
	cert, key := certFiles(run)
	loc := `        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
`
	return fmt.Sprintf(`    http2_max_concurrent_streams 128;
    server {
        listen %s http2;
%s    }
    server {
        listen %s ssl http2;
        ssl_certificate     %s;
        ssl_certificate_key %s;
        ssl_protocols       TLSv1.2 TLSv1.3;
        ssl_ecdh_curve      X25519:prime256v1;
        ssl_session_tickets on;
        ssl_session_cache   shared:bench:10m;
%s    }
`, addr(portNginxH2c), loc, addr(portNginxTLS), cert, key, loc)
}

// h2tlsVariants are the Sluice configurations of these cases: h2c on the cleartext listener, and
// TLS with the benchmark's certificate (HTTP/1.1 and h2 by ALPN, the default with TLS).
func h2tlsVariants(run string) (h2c, tlsv sluiceVariant) {
	cert, key := certFiles(run)
	h2c = sluiceVariant{name: "h2c", server: "  protocols        = [\"http1\", \"h2c\"]\n"}
	tlsv = sluiceVariant{name: "tls", server: fmt.Sprintf("  tls {\n    cert_file = %q\n    key_file  = %q\n  }\n", cert, key)}
	return h2c, tlsv
}

// planH2TLSCases adds the HTTP/2 and TLS groups. portOf gives a Sluice variant its port.
func (h *harness) planH2TLSCases(add func(*benchCase), portOf func(sluiceVariant) int) {
	h2c, tlsv := h2tlsVariants(h.run)
	h2cOK, tlsOK := h.sluiceOK, h.sluiceOK
	if h.sluiceOK {
		if err := h.checkVariant(h2c); err != nil {
			h.note("Sluice h2c left out (this build does not serve h2c): %v", err)
			h2cOK = false
		}
		if h.opt.mode != "quick" {
			if err := h.checkVariant(tlsv); err != nil {
				h.note("Sluice TLS left out: %v", err)
				tlsOK = false
			}
		}
	}
	g := fmt.Sprintf("HTTP/2 h2c, 64 conns × %d streams, 64 B", h2Streams)
	add(&benchCase{Label: "go h2 ceiling", Kind: "ceiling", Group: g, Conns: 64, Path: "/", port: portCeiling, Tool: toolH2load})
	add(&benchCase{Label: "nginx", Kind: "nginx", Group: g, Conns: 64, Path: "/", port: portNginxH2c, Tool: toolH2load})
	if h2cOK {
		add(&benchCase{Label: "sluice empty", Kind: "sluice", Variant: h2c.name, Group: g, Conns: 64, Path: "/", port: portOf(h2c), Tool: toolH2load})
	}
	if h.opt.mode == "quick" {
		return // the TLS rows are in full mode
	}
	{
		g := fmt.Sprintf("HTTP/2 over TLS, 64 conns × %d streams, 64 B", h2Streams)
		add(&benchCase{Label: "go h2 ceiling", Kind: "ceiling", Group: g, Conns: 64, Path: "/", port: portCeilingTLS, Tool: toolH2load, TLS: true})
		add(&benchCase{Label: "nginx", Kind: "nginx", Group: g, Conns: 64, Path: "/", port: portNginxTLS, Tool: toolH2load, TLS: true})
		if tlsOK {
			add(&benchCase{Label: "sluice empty", Kind: "sluice", Variant: tlsv.name, Group: g, Conns: 64, Path: "/", port: portOf(tlsv), Tool: toolH2load, TLS: true})
		}
	}

	type tc struct{ group, tool, curve string }
	groups := []tc{
		{"TLS 1.3 keep-alive, HTTP/1.1, 64 conns, 64 B", "", ""},
		{"TLS 1.3 full handshake per request (X25519, ECDSA P-256)", toolTLSFull, groupX25519},
		{"TLS 1.3 resumed handshake per request (X25519, PSK)", toolTLSResume, groupX25519},
	}
	for _, t := range groups {
		conns := 64
		if t.tool != "" {
			conns = handshakeConns
		}
		add(&benchCase{Label: "nginx", Kind: "nginx", Group: t.group, Conns: conns, Path: "/", port: portNginxTLS, Tool: t.tool, TLS: true, Curve: t.curve})
		if tlsOK {
			add(&benchCase{Label: "sluice empty", Kind: "sluice", Variant: tlsv.name, Group: t.group, Conns: conns, Path: "/", port: portOf(tlsv), Tool: t.tool, TLS: true, Curve: t.curve})
		}
	}
	if tlsOK {
		// Debian 12's OpenSSL 3.0 has no ML-KEM, so nginx cannot take part: Sluice alone, beside
		// its X25519 figure in the group above.
		add(&benchCase{Label: "sluice empty", Kind: "sluice", Variant: tlsv.name, Group: "TLS 1.3 full handshake per request (X25519MLKEM768 hybrid, ECDSA P-256)",
			Conns: handshakeConns, Path: "/", port: portOf(tlsv), Tool: toolTLSFull, TLS: true, Curve: groupHybrid})
	}
}

// load runs the case's load generator on core 0 for d.
func (h *harness) load(c *benchCase, d time.Duration) (wrkResult, error) {
	switch c.Tool {
	case toolH2load:
		return runH2load("0", c.url(), c.Conns, d)
	case toolH2GRPC:
		return runH2loadGRPC("0", c.url(), c.body, c.Conns, d)
	case toolTLSFull, toolTLSResume:
		return h.runTLSLoad(c, d)
	}
	return runWrk("0", h.script, c.url(), c.Conns, d, c.headers)
}

var (
	h2Finished = regexp.MustCompile(`finished in ([0-9.]+)(m?s), ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Status   = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2ReqTime  = regexp.MustCompile(`time for request:\s+(\S+)\s+(\S+)\s+(\S+)`)
)

// runH2load runs h2load (Debian's nghttp2-client) with conns connections of h2Streams streams
// each, one thread, for d: h2c with prior knowledge on http://, h2 by ALPN on https://. h2load
// reports no percentiles: the mean latency goes in P50US, P99US stays 0.
func runH2load(cpus, url string, conns int, d time.Duration) (wrkResult, error) {
	secs := strconv.Itoa(max(int(d.Round(time.Second)/time.Second), 1))
	cmd := exec.Command("taskset", "-c", cpus, "h2load", "-t1", "-c"+strconv.Itoa(conns), "-m"+strconv.Itoa(h2Streams),
		"-D", secs, url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("h2load: %w: %s%s", err, firstLines(out.String(), 4), firstLines(errb.String(), 4))
	}
	return parseH2load(out.String(), cmd.ProcessState)
}

func parseH2load(s string, st *os.ProcessState) (wrkResult, error) {
	var res wrkResult
	m := h2Finished.FindStringSubmatch(s)
	r := h2Requests.FindStringSubmatch(s)
	if m == nil || r == nil {
		return res, fmt.Errorf("h2load printed no summary: %s", firstLines(s, 6))
	}
	secs, _ := strconv.ParseFloat(m[1], 64)
	if m[2] == "ms" {
		secs /= 1000
	}
	res.DurationUS = int64(secs * 1e6)
	n := func(s string) int64 { v, _ := strconv.ParseInt(s, 10, 64); return v }
	res.Requests = n(r[4]) // succeeded
	res.ErrRead = n(r[5]) + n(r[6])
	res.ErrTimeout = n(r[7])
	if sc := h2Status.FindStringSubmatch(s); sc != nil {
		res.ErrStatus = n(sc[3]) + n(sc[4])
		res.Requests -= res.ErrStatus
	}
	if t := h2ReqTime.FindStringSubmatch(s); t != nil {
		res.P50US = durUS(t[3])
		res.MeanUS = res.P50US
	}
	if st != nil {
		res.CPUTicks = int64((st.UserTime() + st.SystemTime()) * clockTick / time.Second)
	}
	return res, nil
}

// durUS parses h2load's durations ("254us", "20.41ms", "1.02s") into microseconds.
func durUS(s string) float64 {
	for _, u := range []struct {
		suffix string
		mul    float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.mul
		}
	}
	return 0
}

// runTLSLoad runs `bench tlsload` on core 0 against c.
func (h *harness) runTLSLoad(c *benchCase, d time.Duration) (wrkResult, error) {
	args := []string{"-c", "0", h.binPath("bench"), "tlsload", "-addr", addr(c.port), "-path", c.Path,
		"-c", strconv.Itoa(c.Conns), "-d", d.String(), "-group", c.Curve}
	if c.Tool == toolTLSResume {
		args = append(args, "-resume")
	}
	cmd := exec.Command("taskset", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("tlsload: %w: %s", err, firstLines(errb.String(), 4))
	}
	var r tlsLoadResult
	if err := jsonUnmarshal(out.Bytes(), &r); err != nil {
		return wrkResult{}, err
	}
	if c.Tool == toolTLSResume && r.Requests > 0 && r.Resumed < r.Requests*9/10 {
		return wrkResult{}, fmt.Errorf("only %d of %d handshakes resumed", r.Resumed, r.Requests)
	}
	if c.Tool == toolTLSFull && r.Resumed > 0 {
		return wrkResult{}, fmt.Errorf("%d of %d handshakes resumed in a full-handshake run", r.Resumed, r.Requests)
	}
	st := cmd.ProcessState
	return wrkResult{Requests: r.Requests, DurationUS: r.DurationUS, ErrRead: r.Errors, P50US: r.P50US, P99US: r.P99US, MeanUS: r.MeanUS,
		CPUTicks: int64((st.UserTime() + st.SystemTime()) * clockTick / time.Second)}, nil
}

// tlsLoadResult is what `bench tlsload` prints.
type tlsLoadResult struct {
	Requests   int64   `json:"requests"`
	Resumed    int64   `json:"resumed"`
	Errors     int64   `json:"errors"`
	DurationUS int64   `json:"duration_us"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	MeanUS     float64 `json:"mean_us"`
	Group      string  `json:"group"`
}

// tlsLoadMain is `bench tlsload`: conns workers each open a TLS connection, send one request with
// Connection: close, read the answer and close, for d. Without -resume every handshake is full
// (no session cache); with it each worker keeps the session ticket of its previous connection, so
// every handshake after the first resumes (TLS 1.3 PSK with a fresh key exchange). The client
// offers exactly one key exchange group, so the figure is for that group.
func tlsLoadMain(args []string) error {
	fs := flag.NewFlagSet("tlsload", flag.ContinueOnError)
	address := fs.String("addr", "127.0.0.1:18107", "server address")
	path := fs.String("path", "/", "request path")
	conns := fs.Int("c", handshakeConns, "concurrent connections")
	d := fs.Duration("d", 10*time.Second, "duration")
	resume := fs.Bool("resume", false, "resume sessions (TLS 1.3 PSK)")
	group := fs.String("group", groupX25519, "key exchange group offered: x25519 | x25519mlkem768")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var curve tls.CurveID
	switch *group {
	case groupX25519, "":
		curve, *group = tls.X25519, groupX25519
	case groupHybrid:
		curve = tls.X25519MLKEM768
	default:
		return fmt.Errorf("unknown group %q", *group)
	}
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *address + "\r\nConnection: close\r\n\r\n")
	var requests, resumed, errs atomic.Int64
	var mu sync.Mutex
	var lat []float64
	deadline := time.Now().Add(*d)
	start := time.Now()
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			cfg := &tls.Config{
				// A load generator on loopback: the certificate is the benchmark's own. Skipping
				// the chain check keeps the client's CPU for the handshake itself; the server's
				// work is the same either way.
				InsecureSkipVerify: true,
				CurvePreferences:   []tls.CurveID{curve},
				MinVersion:         tls.VersionTLS13,
				NextProtos:         []string{"http/1.1"},
			}
			if *resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			buf := make([]byte, 4096)
			var mine []float64
			for time.Now().Before(deadline) {
				t0 := time.Now()
				didResume, err := tlsRequest(*address, cfg, req, buf)
				if err != nil {
					errs.Add(1)
					continue
				}
				requests.Add(1)
				if didResume {
					resumed.Add(1)
				}
				mine = append(mine, float64(time.Since(t0).Microseconds()))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	r := tlsLoadResult{Requests: requests.Load(), Resumed: resumed.Load(), Errors: errs.Load(),
		DurationUS: time.Since(start).Microseconds(), Group: *group}
	if len(lat) > 0 {
		r.P50US, r.P99US = lat[len(lat)/2], lat[len(lat)*99/100]
		var sum float64
		for _, v := range lat {
			sum += v
		}
		r.MeanUS = sum / float64(len(lat))
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// tlsRequest makes one TLS connection, sends req and reads the answer to its end.
func tlsRequest(address string, cfg *tls.Config, req, buf []byte) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", address, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false, err
	}
	_, err = io.CopyBuffer(io.Discard, resp.Body, buf)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return c.ConnectionState().DidResume, err
}

// probeH2TLS checks an HTTP/2 or TLS case's answer with Go's client speaking what the case's
// load generator speaks.
func probeH2TLS(c *benchCase) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableCompression: true}
	var p http.Protocols
	switch {
	case c.Tool == toolH2load && c.TLS:
		p.SetHTTP2(true)
	case c.Tool == toolH2load:
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	tr.Protocols = &p
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(c.url())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(b) != 64 {
		return fmt.Errorf("status %d, %d bytes (%s)", resp.StatusCode, len(b), resp.Proto)
	}
	if c.Tool == toolH2load && resp.ProtoMajor != 2 {
		return errors.New("answered over " + resp.Proto + ", not HTTP/2")
	}
	return nil
}

// h2tlsIntro says how the HTTP/2 and TLS groups were loaded, when the run has them.
func h2tlsIntro(cases []*benchCase) string {
	var h2, hs, grpc bool
	for _, c := range cases {
		h2 = h2 || c.Tool == toolH2load
		hs = hs || c.Tool == toolTLSFull || c.Tool == toolTLSResume
		grpc = grpc || c.Tool == toolH2GRPC
	}
	var b strings.Builder
	if grpc {
		b.WriteString("gRPC group: h2load posts one gRPC frame per call (a SimpleRequest with 64 bytes of payload asking for 64 " +
			"bytes back) to grpc-go's interop server (testbed/cmd/grpcupstream, on core 1), direct (`grpc direct`: its proxy CPU " +
			"column is the server's own), through nginx's `grpc_pass` (upstream keepalive) and through Sluice's empty pipeline " +
			"(h2c to the client and to the upstream). For the proxied rows the upstream column is the gRPC server's CPU per call " +
			"and the proxy column is what the proxy adds per call.\n\n")
	}
	if h2 {
		fmt.Fprintf(&b, "HTTP/2 groups: h2load (nghttp2) -t1 with %d streams per connection on core 0 instead of wrk, h2c with prior "+
			"knowledge or h2 by ALPN; the reference is `go h2 ceiling` (testbed/cmd/h2ceiling), net/http's HTTP/2 server answering "+
			"the 64-byte body itself, the ceiling of the stack Sluice's HTTP/2 side runs on (Sluice and nginx also forward to the upstream). "+
			"h2load gives no percentiles: the latency column is its mean.\n\n", h2Streams)
	}
	if hs {
		fmt.Fprintf(&b, "TLS groups: Sluice and nginx (TLS 1.2–1.3, X25519 first, session tickets on) serve the same self-signed ECDSA P-256 "+
			"certificate. Keep-alive: wrk over https (HTTP/1.1). Handshakes: `bench tlsload`, %d Go clients on core 0, each "+
			"opening a connection per request (`Connection: close`) and offering exactly one key exchange group, TLS 1.3: without a "+
			"session cache (a full handshake: X25519, an ECDSA signature by the server) or resuming the previous connection's "+
			"session (PSK with a fresh X25519 exchange, no signature). The hybrid post-quantum group X25519MLKEM768 is measured "+
			"on Sluice alone: Debian 12's OpenSSL 3.0 (nginx) has no ML-KEM. Proxy CPU per request is CPU per handshake plus one "+
			"proxied request.\n\n", handshakeConns)
	}
	return b.String()
}

// h2tlsTargets renders the targets of issues 27 (HTTP/2) and 29 (TLS) from the groups present.
func h2tlsTargets(b *strings.Builder, byGroup map[string][]*benchCase) {
	var lines []string
	row := func(target string, q float64, clean int, ok bool) {
		if q == 0 {
			return
		}
		v := "**not met**"
		if ok {
			v = "**met**"
		}
		if clean < 2 {
			v += fmt.Sprintf(" (%d rounds undisturbed for both: not conclusive)", clean)
		}
		lines = append(lines, fmt.Sprintf("| %s | %.2f | %s |", target, q, v))
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		cases := byGroup[g]
		s, ng, ceil := find(cases, "sluice empty"), find(cases, "nginx"), find(cases, "go h2 ceiling")
		if s == nil || (s.Tool == "" && !s.TLS) {
			continue
		}
		switch {
		case s.Tool == toolH2load:
			q, n := pairedRatioClean(s, ceil, runRPS)
			row(g+": RPS ≥ 0.9 × Go's HTTP/2 ceiling", q, n, q >= 0.9)
			q, n = pairedRatioClean(s, ng, runRPS)
			row(g+": RPS ÷ nginx (reported; below 1.0, RATIONALE.md says where the time goes)", q, n, q >= 1)
		case s.Tool == "":
			q, n := pairedRatioClean(s, ng, runRPS)
			row(g+": RPS ≥ 1.0 × nginx", q, n, q >= 1)
			q, n = pairedRatioClean(s, ng, runCPU)
			row(g+": CPU per request ≤ nginx", q, n, q <= 1)
		case s.Tool == toolH2GRPC:
			q, n := pairedRatioClean(s, find(cases, "grpc direct"), runRPS)
			row(g+": calls/s through Sluice ÷ direct (reported)", q, n, true)
			q, n = pairedRatioClean(s, ng, runRPS)
			row(g+": calls/s ÷ nginx grpc_pass (reported)", q, n, q >= 1)
			q, n = pairedRatioClean(s, ng, runCPU)
			row(g+": proxy CPU per call ÷ nginx grpc_pass (reported)", q, n, q <= 1)
		case ng != nil:
			q, n := pairedRatioClean(s, ng, runRPS)
			row(g+": handshakes/s ≥ 0.9 × nginx", q, n, q >= 0.9)
			q, n = pairedRatioClean(s, ng, runCPU)
			row(g+": CPU per handshake ÷ nginx (reported)", q, n, q <= 1/0.9)
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("## Targets of issues 27 (HTTP/2) and 29 (TLS)\n\n| target | ratio | |\n|---|---:|---|\n")
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n\n")
}
