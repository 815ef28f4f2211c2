package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Ports of the benchmark, all on 127.0.0.1. Fixed so that logs and configs are easy to read; the
// harness refuses to start when one is taken.
const (
	portUpstream   = 18001 // and 18002, 18003 for the p2c_ewma targets
	portNginx      = 18100 // gzip off; 18110 gzip level 1; 18111 gzip level 6
	portHAProxy    = 18101
	portFloor      = 18102 // 18103 with ReduceMemoryUsage, 18104 with sysmonGodebug
	portSluiceBase = 18120 // sluice variant i listens on portSluiceBase+i, its admin API on +100
	portPairBase   = 18180 // the two proxies loaded at once for the filter costs, admin API on +100
	portSink       = 18300 // OTLP/HTTP sink for traces
)

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// nginxConf matches /work/shared/bench/nginx.conf (the configuration the reference figures were
// measured with), plus two more servers with gzip on for the compression comparison.
func nginxConf(run string) string {
	server := func(port int, gzip string) string {
		return fmt.Sprintf(`    server {
        listen %s;
%s        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
`, addr(port), gzip)
	}
	gz := func(level int) string {
		return fmt.Sprintf("        gzip on; gzip_comp_level %d; gzip_types application/json; gzip_min_length 1024;\n", level)
	}
	return fmt.Sprintf(`worker_processes auto;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %[1]s/nginx-body;
    proxy_temp_path       %[1]s/nginx-proxy;
    fastcgi_temp_path     %[1]s/nginx-fcgi;
    uwsgi_temp_path       %[1]s/nginx-uwsgi;
    scgi_temp_path        %[1]s/nginx-scgi;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    upstream up {
        server %[2]s;
        keepalive 1024;
        keepalive_requests 1000000;
    }
%[3]s%[4]s%[5]s%[6]s%[7]s}
`, run, addr(portUpstream), server(portNginx, ""), server(portNginx+10, gz(1)), server(portNginx+11, gz(6)), nginxH2TLSServers(run), nginxGRPCServer())
}

// haproxyConf matches /work/shared/bench/haproxy.cfg.
func haproxyConf() string {
	return fmt.Sprintf(`global
    nbthread 1
    maxconn 8000
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client  30s
    timeout server  30s
    timeout http-keep-alive 30s
frontend fe
    bind %s
    default_backend be
backend be
    server up1 %s
`, addr(portHAProxy), addr(portUpstream))
}

// Secrets of the benchmark's quickstart pipeline (not secrets: loopback only).
const (
	benchHMACSecret = "sluice-bench-hmac-secret-0123456789abcdef"
	benchAPIKey     = "bench-api-key"
)

// component is one part of the quickstart-like pipeline: a filter block or a telemetry block.
type component struct {
	name      string // "jwt", "rate_limit", "wasm", "otel_log", "tracing"
	filter    string // HCL filter block, empty for telemetry
	telemetry string // HCL telemetry block, empty for filters
	headers   []string
}

// components returns the quickstart-like pipeline's parts in pipeline order (otel_log first so it
// also logs the local replies of later filters, as the reference configuration does).
func components(run, wasmModule, token string, timeout bool) []component {
	wasmTimeout, poolMin := "", 2
	if timeout {
		wasmTimeout = "\n    timeout      = \"5ms\""
		// With a timeout, a guest's start function must also finish in time, and several Go
		// guests instantiated at once on one busy core may not: start a few up front.
		poolMin = 4
	}
	return []component{
		{name: "otel_log", filter: fmt.Sprintf(`  filter "otel_log" {
    output = %q
    format = "json"
  }
`, filepath.Join(run, "access-VARIANT.log"))},
		{name: "jwt", filter: fmt.Sprintf(`  filter "jwt" {
    issuer      = "https://bench.sluice/"
    audiences   = ["bench"]
    algorithms  = ["HS256"]
    hmac_secret = %q
  }
`, benchHMACSecret), headers: []string{"Authorization: Bearer " + token}},
		{name: "rate_limit", filter: `  filter "rate_limit" {
    key    = "ip"
    limit  = 1000000
    period = "1s"
    burst  = 100000
  }
`},
		{name: "wasm", filter: fmt.Sprintf(`  filter "wasm" {
    name         = "apikey"
    module       = %q
    config       = { header = "x-api-key", keys = { %q = "bench" } }
    memory_limit = "64MiB"%s
    pool_min     = %d
    pool_max     = 512
    # apikey carries the consumer to handle_response in reqCtx, as the quickstart's abrouter does.
    release_between_phases = true
  }
`, wasmModule, benchAPIKey, wasmTimeout, poolMin), headers: []string{"X-API-Key: " + benchAPIKey}},
		{name: "tracing", telemetry: fmt.Sprintf(`telemetry {
  service_name = "sluice-bench"
  traces {
    exporter     = "otlp"
    endpoint     = "http://%s"
    sample_ratio = 0.01
  }
}
`, addr(portSink))},
	}
}

// sluiceVariant is one Sluice configuration under test.
type sluiceVariant struct {
	name    string // "empty", "quickstart", "p2c", "jwt", …
	parts   []component
	extra   string // more filter blocks (compress)
	targets int    // upstream targets
	policy  string
	server  string // more attributes and blocks of the server block (protocols, tls)
	// upstreamBlock, when set, is the upstream block's body instead of targets on benchupstream.
	upstreamBlock string
	// pipelines are more pipeline blocks, declared before the bench pipeline.
	pipelines string

	// balancer, when set, is the pipeline's balancer block's body instead of
	// `upstream = upstream.up`; "up2" is a second upstream on the same targets, for it to use.
	balancer string
	// maxConns is the server's max_connections (0: 20000).
	maxConns int
}

func (v sluiceVariant) headers() []string {
	var h []string
	for _, c := range v.parts {
		h = append(h, c.headers...)
	}
	return h
}

// hcl renders the variant's configuration, listening on port (admin on port+100).
func (v sluiceVariant) hcl(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Sluice benchmark configuration %q (generated by testbed/bench).\n", v.name)
	// Every load generator and the memory test's idle connections come from 127.0.0.1: no
	// per-address cap (sluice validate warns about it, rightly, outside a benchmark).
	maxConns := v.maxConns
	if maxConns == 0 {
		maxConns = 20000
	}
	fmt.Fprintf(&b, "server {\n  listen           = %q\n  max_connections  = %d\n  max_conns_per_ip = 0\n%s}\n", addr(port), maxConns, v.server)
	fmt.Fprintf(&b, "admin {\n  listen = %q\n}\n", addr(port+100))
	for _, c := range v.parts {
		b.WriteString(c.telemetry)
	}
	b.WriteString("upstream \"up\" {\n")
	if v.policy != "" {
		fmt.Fprintf(&b, "  policy = %q\n", v.policy)
	}
	if v.upstreamBlock != "" {
		b.WriteString(v.upstreamBlock)
	}
	for i := 0; v.upstreamBlock == "" && i < max(v.targets, 1); i++ {
		fmt.Fprintf(&b, "  target {\n    address = %q\n  }\n", addr(portUpstream+i))
	}
	b.WriteString("}\n")
	b.WriteString(v.pipelines)
	if v.balancer != "" {
		fmt.Fprintf(&b, "upstream \"up2\" {\n  target {\n    address = %q\n  }\n}\n", addr(portUpstream))
	}
	b.WriteString("pipeline \"bench\" {\n  match {\n    path_prefix = \"/\"\n  }\n")
	for _, c := range v.parts {
		b.WriteString(strings.ReplaceAll(c.filter, "VARIANT", v.name))
	}
	b.WriteString(v.extra)
	if v.balancer != "" {
		fmt.Fprintf(&b, "  balancer {\n%s  }\n}\n", v.balancer)
	} else {
		b.WriteString("  balancer {\n    upstream = upstream.up\n  }\n}\n")
	}
	return b.String()
}

// canaryPipeline ties with the bench pipeline on host and prefix and adds one header test: a
// request with X-Canary: 1 goes to it, for the cost of routing on one header predicate.
const canaryPipeline = `pipeline "canary" {
  match {
    path_prefix = "/"
    header "x-canary" { exact = "1" }
  }
  balancer {
    upstream = upstream.up
  }
}
`

// compressBlock is Sluice's compress filter set up like nginx's gzip for the comparison.
func compressBlock(level int) string {
	return fmt.Sprintf(`  filter "compress" {
    algorithms = ["gzip"]
    level      = { gzip = %d }
    min_size   = "1KiB"
    types      = ["application/json"]
  }
`, level)
}

// validateSluice runs `sluice validate` on a configuration; the error holds its diagnostics.
func validateSluice(sluice, path string) error {
	out, err := exec.Command(sluice, "validate", "-c", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s", firstLines(string(out), 6))
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

// buildWasmFilter compiles examples/filters/go/apikey (the SDK's reference filter: 4 host calls
// per request) with the standard Go toolchain into dir.
func buildWasmFilter(repo, dir string) (string, error) {
	out := filepath.Join(dir, "apikey.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./apikey")
	cmd.Dir = filepath.Join(repo, "examples", "filters", "go")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the apikey Wasm filter: %w: %s", err, firstLines(string(b), 6))
	}
	return out, nil
}

// buildWATGuest assembles the Wasm tests' bench guest (filters/wasm/testdata/bench.wat: 5 host calls
// and next to no code of its own) with wabt's wat2wasm into dir. Its cost over the empty pipeline
// is the host's part of a Wasm filter, without a guest language's code and runtime.
func buildWATGuest(repo, dir string) (string, error) {
	out := filepath.Join(dir, "bench5.wasm")
	cmd := exec.Command("wat2wasm", filepath.Join(repo, "filters", "wasm", "testdata", "bench.wat"), "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("assembling the 5-host-call WAT guest (wat2wasm, from Debian's wabt): %w: %s", err, firstLines(string(b), 6))
	}
	return out, nil
}

// watComponent is a filter running the WAT guest, configured as the apikey one is.
func watComponent(module string) component {
	return component{name: "wasm-wat", filter: fmt.Sprintf(`  filter "wasm" {
    name         = "bench5"
    module       = %q
    memory_limit = "1MiB"
    pool_min     = 2
    pool_max     = 512
    release_between_phases = true
  }
`, module)}
}

// buildProxyWasmGuest assembles pw_bench.wat, the proxy-wasm twin of bench.wat (the same five
// host calls' work through the proxy-wasm ABI), into dir.
func buildProxyWasmGuest(repo, dir string) (string, error) {
	out := filepath.Join(dir, "pwbench5.wasm")
	cmd := exec.Command("wat2wasm", filepath.Join(repo, "filters", "wasm", "testdata", "pw_bench.wat"), "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("assembling the proxy-wasm WAT guest (wat2wasm, from Debian's wabt): %w: %s", err, firstLines(string(b), 6))
	}
	return out, nil
}

// proxyWasmComponent runs the proxy-wasm twin configured as the WAT guest is (it keeps its
// instance across the request: proxy-wasm has no release_between_phases).
func proxyWasmComponent(module string) component {
	return component{name: "wasm-proxy", filter: fmt.Sprintf(`  filter "wasm" {
    name         = "pwbench5"
    module       = %q
    memory_limit = "1MiB"
    pool_min     = 2
    pool_max     = 512
  }
`, module)}
}

// sysmonGodebug is the GODEBUG setting `sluice run` adds for itself (cmd/sluice/sysmon.go), given
// to one floor proxy so that the report can separate it from Sluice's own code path.
const sysmonGodebug = "schedtrace=2147483647"
