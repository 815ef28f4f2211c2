package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// memoryResult holds the memory figures: idle RSS and memory per idle keep-alive connection.
type memoryResult struct {
	// Idle RSS (KiB) after start-up and 200 requests, then 3 s idle.
	EmptyRSSKiB      int64     `json:"empty_rss_kib"`
	QuickstartRSSKiB int64     `json:"quickstart_rss_kib"`
	NoWasmRSSKiB     int64     `json:"quickstart_without_wasm_rss_kib"`
	WasmKiB          int64     `json:"wasm_kib"` // quickstart minus quickstart without the Wasm filter
	QuickstartParts  []string  `json:"quickstart_parts"`
	WasmPoolMin      int       `json:"wasm_pool_min"`
	Conns            int       `json:"conns"`
	PerConn          []connMem `json:"per_conn"`
}

// connMem is the RSS of one proxy before and after n idle keep-alive connections were opened.
type connMem struct {
	Proxy      string  `json:"proxy"`
	Conns      int     `json:"conns,omitempty"` // when not the memory test's Conns (the large row)
	BeforeKiB  int64   `json:"before_kib"`
	AfterKiB   int64   `json:"after_kib"`
	PerConnKiB float64 `json:"per_conn_kib"`
}

const portMemory = 18200 // fresh processes of the memory test: 18200…18203 (admin +100)

func (h *harness) measureMemory() (*memoryResult, error) {
	m := &memoryResult{Conns: h.opt.nconns, WasmPoolMin: 2}
	if !h.sluiceOK {
		return nil, fmt.Errorf("this build of Sluice cannot serve the empty pipeline")
	}
	{
		rss, err := h.idleRSS(sluiceVariant{name: "mem-empty"}, portMemory)
		if err != nil {
			return nil, err
		}
		m.EmptyRSSKiB = rss
		h.logf("idle RSS, empty pipeline: %d KiB", rss)
	}
	if len(h.qs) > 0 {
		qs := sluiceVariant{parts: h.qs}
		for _, p := range qs.parts {
			m.QuickstartParts = append(m.QuickstartParts, p.name)
		}
		rss, err := h.idleRSS(sluiceVariant{name: "mem-quickstart", parts: qs.parts}, portMemory+1)
		if err != nil {
			return nil, err
		}
		m.QuickstartRSSKiB = rss
		var noWasm []component
		for _, p := range qs.parts {
			if p.name != "wasm" {
				noWasm = append(noWasm, p)
			}
		}
		m.NoWasmRSSKiB = m.QuickstartRSSKiB
		if len(noWasm) < len(qs.parts) {
			if m.NoWasmRSSKiB, err = h.idleRSS(sluiceVariant{name: "mem-nowasm", parts: noWasm}, portMemory+2); err != nil {
				return nil, err
			}
		}
		m.WasmKiB = m.QuickstartRSSKiB - m.NoWasmRSSKiB
		h.logf("idle RSS, quickstart: %d KiB (without the Wasm filter %d KiB)", m.QuickstartRSSKiB, m.NoWasmRSSKiB)
	}

	// Memory per idle keep-alive client connection, for Sluice and, for comparison, the floor and
	// nginx.
	type subject struct {
		name string
		port int
		argv []string
		n    int // connections; 0: h.opt.nconns
	}
	var subjects []subject
	{
		conf := filepath.Join(h.run, "mem-conns.hcl")
		if err := os.WriteFile(conf, []byte(sluiceVariant{name: "mem-conns"}.hcl(portMemory+3)), 0o644); err != nil {
			return nil, err
		}
		subjects = append(subjects, subject{"sluice empty", portMemory + 3, []string{h.binPath("sluice"), "run", "-c", conf, "-log-level", "warn"}, 0})
	}
	subjects = append(subjects,
		subject{"floor", portFloor, []string{h.binPath("floorproxy"), "-listen", addr(portFloor), "-upstream", addr(portUpstream)}, 0},
		// What fasthttp's ReduceMemoryUsage (idle connections give their buffers back) saves.
		subject{"floor, ReduceMemoryUsage", portFloor, []string{h.binPath("floorproxy"), "-listen", addr(portFloor), "-upstream", addr(portUpstream), "-reduce-memory"}, 0},
		subject{"nginx", portNginx, []string{"nginx", "-p", h.run + "/", "-c", filepath.Join(h.run, "nginx.conf")}, 0},
	)
	if err := h.ensureUpstream(1); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(h.run, "nginx.conf")); err != nil {
		_ = os.WriteFile(filepath.Join(h.run, "nginx.conf"), []byte(nginxConf(h.run)), 0o644)
	}
	if n := h.opt.nconnsLarge; n > 0 {
		// Sluice alone at the larger count: the process holding the connections needs a
		// descriptor for each, as does the gateway.
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Max < uint64(n)+1024 {
			h.note("memory per connection at %d connections skipped: the open-file limit (%d) is too low", n, lim.Max)
		} else {
			conf := filepath.Join(h.run, "mem-conns-large.hcl")
			v := sluiceVariant{name: "mem-conns-large", maxConns: n + 1000}
			if err := os.WriteFile(conf, []byte(v.hcl(portMemory+3)), 0o644); err != nil {
				return nil, err
			}
			subjects = append(subjects, subject{"sluice empty", portMemory + 3,
				[]string{h.binPath("sluice"), "run", "-c", conf, "-log-level", "warn"}, n})
		}
	}
	for _, s := range subjects {
		cm, err := h.connMemory(s.name, s.port, s.argv, s.n)
		if err != nil {
			h.note("memory per connection, %s: %v", s.name, err)
			continue
		}
		m.PerConn = append(m.PerConn, cm)
		h.logf("%s: %d idle connections: RSS %d → %d KiB, %.1f KiB per connection", s.name, cm.conns(m.Conns), cm.BeforeKiB, cm.AfterKiB, cm.PerConnKiB)
	}
	return m, nil
}

// idleRSS starts a fresh Sluice with the variant, warms it with 200 requests, lets it idle 3 s
// and returns its RSS.
func (h *harness) idleRSS(v sluiceVariant, port int) (int64, error) {
	if err := h.ensureUpstream(1); err != nil {
		return 0, err
	}
	conf := filepath.Join(h.run, v.name+".hcl")
	if err := os.WriteFile(conf, []byte(v.hcl(port)), 0o644); err != nil {
		return 0, err
	}
	p, err := h.start(v.name, "1", nil, h.binPath("sluice"), "run", "-c", conf, "-log-level", "warn")
	if err != nil {
		return 0, err
	}
	defer p.stop()
	c := &benchCase{Label: v.name, Path: "/", port: port, headers: v.headers(), proc: p}
	if err := h.warm(c, 200); err != nil {
		return 0, err
	}
	time.Sleep(3 * time.Second)
	return treeRSS(p.pid()), nil
}

// warm waits for the case to answer, then sends n requests.
func (h *harness) warm(c *benchCase, n int) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := probe(client, c)
		if err == nil {
			break
		}
		if c.proc.exited() {
			return fmt.Errorf("%s exited: %s", c.proc.name, c.proc.logTail())
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		if err := probe(client, c); err != nil {
			return err
		}
	}
	client.CloseIdleConnections()
	return nil
}

// conns is how many connections the row measured.
func (c connMem) conns(def int) int {
	if c.Conns > 0 {
		return c.Conns
	}
	return def
}

// connMemory starts a fresh proxy, and measures its RSS before and after opening n (0:
// h.opt.nconns) idle keep-alive connections to it (one request each).
func (h *harness) connMemory(name string, port int, argv []string, n int) (connMem, error) {
	nconns := h.opt.nconns
	if n > 0 {
		nconns = n
	}
	p, err := h.start("mem-"+strings.ReplaceAll(name, " ", "-"), "1", nil, argv...)
	if err != nil {
		return connMem{}, err
	}
	defer p.stop()
	c := &benchCase{Label: name, Path: "/", port: port, proc: p}
	if err := h.warm(c, 200); err != nil {
		return connMem{}, err
	}
	time.Sleep(2 * time.Second)
	cm := connMem{Proxy: name, BeforeKiB: treeRSS(p.pid())}
	if n > 0 {
		cm.Conns = n
	}

	cmd := exec.Command("taskset", "-c", "0", h.binPath("bench"), "conns", "-addr", addr(port), "-n", fmt.Sprint(nconns))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return cm, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return cm, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return cm, err
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.HasPrefix(line, "READY") {
		stdin.Close()
		_ = cmd.Wait()
		return cm, fmt.Errorf("connection client: %s %s", strings.TrimSpace(line), firstLines(stderr.String(), 3))
	}
	time.Sleep(3 * time.Second)
	cm.AfterKiB = treeRSS(p.pid())
	cm.PerConnKiB = float64(cm.AfterKiB-cm.BeforeKiB) / float64(nconns)
	return cm, nil
}
