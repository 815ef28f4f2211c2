package engine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a config attribute written as a Go duration string ("250ms", "30s"). The hcl
// package parses it and reports a bad one at the attribute.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes d back as a duration string (for /config).
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Size is a config attribute written as a byte size ("16KiB", "8MiB", "1GiB", "512", "10KB").
type Size int64

// MarshalText writes s as a plain byte count.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// ParseSize parses "16KiB"-style sizes: a non-negative integer and an optional unit among B, KiB,
// MiB, GiB (powers of 1024) and KB, MB, GB (powers of 1000).
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit such as \"16KiB\" or \"8MiB\"", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	mult := int64(1)
	switch strings.TrimSpace(t[i:]) {
	case "", "B":
	case "KiB":
		mult = 1 << 10
	case "MiB":
		mult = 1 << 20
	case "GiB":
		mult = 1 << 30
	case "KB":
		mult = 1e3
	case "MB":
		mult = 1e6
	case "GB":
		mult = 1e9
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KiB, MiB, GiB, KB, MB or GB)", s, strings.TrimSpace(t[i:]))
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n * mult), nil
}

// UpstreamRef is an attribute written as a reference to an upstream block, `upstream.NAME`. It
// holds NAME; the hcl package reports a reference to an undeclared upstream.
type UpstreamRef string

// RedisRef is an attribute written as a reference to a redis block, `redis.NAME`. It holds NAME.
type RedisRef string

// ServerConfig is the `server` block.
type ServerConfig struct {
	Listen           string     `hcl:"listen,optional" json:"listen"`
	ReadTimeout      Duration   `hcl:"read_timeout,optional" json:"read_timeout"`
	WriteTimeout     Duration   `hcl:"write_timeout,optional" json:"write_timeout"`
	IdleTimeout      Duration   `hcl:"idle_timeout,optional" json:"idle_timeout"`
	MaxHeaderBytes   Size       `hcl:"max_header_bytes,optional" json:"max_header_bytes"`
	MaxBodyBytes     Size       `hcl:"max_body_bytes,optional" json:"max_body_bytes"`
	MaxConnections   int        `hcl:"max_connections,optional" json:"max_connections"`
	MaxConnsPerIP    int        `hcl:"max_conns_per_ip,optional" json:"max_conns_per_ip"`
	TrustedProxies   []string   `hcl:"trusted_proxies,optional" json:"trusted_proxies"`
	RequestID        string     `hcl:"request_id,optional" json:"request_id"`
	MaxResponseBytes Size       `hcl:"max_response_bytes,optional" json:"max_response_bytes"`
	ShutdownTimeout  Duration   `hcl:"shutdown_timeout,optional" json:"shutdown_timeout"`
	TLS              *TLSConfig `hcl:"tls,block" json:"tls,omitempty"`
	// MaxURIBytes bounds the request-target; a longer one is answered 414 (hopbyhop.go).
	MaxURIBytes Size `hcl:"max_uri_bytes,optional" json:"max_uri_bytes"`
	// UntrustedHeaders are removed from requests whose peer is not in trusted_proxies; nil:
	// DefaultUntrustedHeaders.
	UntrustedHeaders []string `hcl:"untrusted_headers,optional" json:"untrusted_headers"`
	// ForwardedHeader makes the balancer send a Forwarded header (RFC 7239) along with
	// X-Forwarded-*.
	ForwardedHeader bool `hcl:"forwarded_header,optional" json:"forwarded_header"`

	// Connection-flood and slow-client defences (conns.go, writerate.go, heldbudget.go).
	FirstByteTimeout         Duration `hcl:"first_byte_timeout,optional" json:"first_byte_timeout"`
	IdleTimeoutUnderPressure Duration `hcl:"idle_timeout_under_pressure,optional" json:"idle_timeout_under_pressure"`
	HeldResponseBudget       Size     `hcl:"held_response_budget,optional" json:"held_response_budget"`
	MinWriteRate             Size     `hcl:"min_write_rate,optional" json:"min_write_rate"`
	MinWriteRateWindow       Duration `hcl:"min_write_rate_window,optional" json:"min_write_rate_window"`
	// EscapedSlashes is what to do with a path holding %2F, %5C or a backslash: "reject" (400),
	// "redirect" (307 to the unescaped path), "unescape" (route and forward the unescaped path)
	// or "keep" (route with the escape as a byte of its segment, forward the raw path).
	EscapedSlashes string `hcl:"escaped_slashes,optional" json:"escaped_slashes"`
	// WasmCodeCacheBytes bounds the compiled Wasm modules kept while no filter uses them, so
	// that a reload back to a recent module does not compile it again (estimated size).
	WasmCodeCacheBytes Size `hcl:"wasm_code_cache_bytes,optional" json:"wasm_code_cache_bytes"`
	// StreamTimeout bounds the whole of a streamed request or response body (stream.go),
	// whose other timeouts measure only idleness; 0: no bound.
	StreamTimeout Duration `hcl:"stream_timeout,optional" json:"stream_timeout"`
	// ForwardClientCert is what upstreams get in X-Forwarded-Client-Cert (clientcert.go):
	// "sanitize" (nothing), "sanitize_set", "forward_only" or "append_forward".
	ForwardClientCert string `hcl:"forward_client_cert,optional" json:"forward_client_cert"`
	// Protocols are the client protocols served (protocols.go): "http1", "h2" (TLS, by ALPN),
	// "h2c" (cleartext, prior knowledge); nil: http1, and h2 where TLS is on.
	Protocols []string `hcl:"protocols,optional" json:"protocols"`
	// H2MaxConcurrentStreams is the streams an HTTP/2 client may have open at once per
	// connection (SETTINGS_MAX_CONCURRENT_STREAMS).
	H2MaxConcurrentStreams int `hcl:"h2_max_concurrent_streams,optional" json:"h2_max_concurrent_streams"`
	// H2Server is the HTTP/2 server implementation (h2conn.go): "net/http" (Go's own) or
	// "sluice" (the engine's own loop on x/net/http2's Framer and hpack, the default).
	H2Server string `hcl:"h2_server,optional" json:"h2_server"`
}

// SetDefaults fills the server block's defaults.
func (s *ServerConfig) SetDefaults() {
	*s = ServerConfig{
		Listen:           "127.0.0.1:8080",
		ReadTimeout:      Duration(30 * time.Second),
		WriteTimeout:     Duration(30 * time.Second),
		IdleTimeout:      Duration(90 * time.Second),
		MaxHeaderBytes:   16 << 10,
		MaxBodyBytes:     8 << 20,
		MaxConnections:   10000,
		MaxConnsPerIP:    256,
		MaxResponseBytes: 64 << 20,
		ShutdownTimeout:  Duration(30 * time.Second),
		MaxURIBytes:      defaultMaxURIBytes,
		UntrustedHeaders: slices.Clone(DefaultUntrustedHeaders),

		FirstByteTimeout:         Duration(10 * time.Second),
		IdleTimeoutUnderPressure: Duration(5 * time.Second),
		HeldResponseBudget:       256 << 20,
		MinWriteRate:             1 << 10,
		MinWriteRateWindow:       Duration(10 * time.Second),
		EscapedSlashes:           "reject",
		WasmCodeCacheBytes:       256 << 20,
		StreamTimeout:            Duration(time.Hour),
		ForwardClientCert:        ForwardCertSanitize,
		H2MaxConcurrentStreams:   defaultH2MaxConcurrentStreams,
		H2Server:                 H2ServerSluice,
	}
}

// Validate checks the server block.
func (s *ServerConfig) Validate() error {
	var errs []error
	if s.Listen == "" {
		errs = append(errs, FieldErr("listen", "must not be empty"))
	} else if err := CheckListenAddress(s.Listen); err != nil {
		errs = append(errs, &FieldError{Field: "listen", Err: err})
	}
	if s.MaxHeaderBytes < 1024 {
		errs = append(errs, FieldErr("max_header_bytes", "must be at least 1KiB"))
	}
	if s.MaxBodyBytes <= 0 {
		errs = append(errs, FieldErr("max_body_bytes", "must be positive"))
	}
	if s.MaxConnections < 0 {
		errs = append(errs, FieldErr("max_connections", "must not be negative (0 = unlimited)"))
	}
	if s.MaxConnsPerIP < 0 {
		errs = append(errs, FieldErr("max_conns_per_ip", "must not be negative (0 = unlimited)"))
	}
	if s.MaxURIBytes < 256 {
		errs = append(errs, FieldErr("max_uri_bytes", "must be at least 256 bytes"))
	}
	for _, n := range s.UntrustedHeaders {
		if !validHeaderName(n) {
			errs = append(errs, FieldErr("untrusted_headers", "invalid header name %q", n))
		}
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{{"first_byte_timeout", s.FirstByteTimeout}, {"idle_timeout_under_pressure", s.IdleTimeoutUnderPressure}, {"min_write_rate_window", s.MinWriteRateWindow}, {"stream_timeout", s.StreamTimeout}} {
		if d.d < 0 {
			errs = append(errs, FieldErr(d.name, "must not be negative"))
		}
	}
	if s.HeldResponseBudget < 0 {
		errs = append(errs, FieldErr("held_response_budget", "must not be negative (0 = unlimited)"))
	}
	if s.MinWriteRate < 0 {
		errs = append(errs, FieldErr("min_write_rate", "must not be negative (0 = no minimum)"))
	}
	if s.MinWriteRate > 0 && s.MinWriteRateWindow < Duration(time.Second) {
		errs = append(errs, FieldErr("min_write_rate_window", "must be at least 1s (the rate is measured over it)"))
	}
	errs = append(errs, s.unlimitedWarnings()...)
	if _, err := ParseSlashAction(s.EscapedSlashes); err != nil {
		errs = append(errs, &FieldError{Field: "escaped_slashes", Err: err})
	}
	if s.WasmCodeCacheBytes < 0 {
		errs = append(errs, FieldErr("wasm_code_cache_bytes", "must not be negative (0 keeps no unused module)"))
	}
	if _, err := ParsePrefixes(s.TrustedProxies); err != nil {
		errs = append(errs, &FieldError{Field: "trusted_proxies", Err: err})
	}
	if err := ParseForwardClientCert(s.ForwardClientCert); err != nil {
		errs = append(errs, &FieldError{Field: "forward_client_cert", Err: err})
	}
	errs = append(errs, s.validateHTTP2()...)
	return errors.Join(errs...)
}

// AdminConfig is the `admin` block.
type AdminConfig struct {
	Listen string `hcl:"listen,optional" json:"listen"`
	Token  string `hcl:"token,optional" json:"token" sluice:"secret"`
	// AllowInsecure allows a non-loopback listen address without a token (see Validate).
	AllowInsecure bool `hcl:"allow_insecure,optional" json:"allow_insecure"`
	// ProbesWithoutToken lets /healthz and /readyz answer without the token: Kubernetes probes
	// cannot send a secret header. They tell only whether the gateway runs and is ready (and
	// the names of upstreams without a healthy target); every other path still needs the token.
	ProbesWithoutToken bool `hcl:"probes_without_token,optional" json:"probes_without_token"`
	// ReadyzUpstreams is what /readyz makes of the upstreams (readyz.go): "any_available"
	// (default) or "ignore".
	ReadyzUpstreams string `hcl:"readyz_upstreams,optional" json:"readyz_upstreams"`
}

// SetDefaults fills the admin block's defaults.
func (a *AdminConfig) SetDefaults() {
	a.Listen = "127.0.0.1:9901"
	a.ReadyzUpstreams = ReadyzAnyAvailable
}

// TelemetryConfig is the `telemetry` block.
type TelemetryConfig struct {
	ServiceName string        `hcl:"service_name,optional" json:"service_name"`
	Traces      *TracesConfig `hcl:"traces,block" json:"traces,omitempty"`
	Logs        *LogsConfig   `hcl:"logs,block" json:"logs,omitempty"`
	// RecentTraces sizes the dashboard's ring of waterfalls (recentconfig.go); nil: defaults.
	RecentTraces *RecentTracesConfig `hcl:"recent_traces,block" json:"recent_traces,omitempty"`
	// StageTimings records each filter phase's start and end for the dashboard (default true).
	StageTimings *bool `hcl:"stage_timings,optional" json:"stage_timings,omitempty"`

	// Export settings shared by the span and OTLP log pipelines (telemetryconfig.go).
	Headers           map[string]string `hcl:"headers,optional" json:"headers,omitempty" sluice:"secret"`
	QueueSize         int               `hcl:"queue_size,optional" json:"queue_size"`
	BatchSize         int               `hcl:"batch_size,optional" json:"batch_size"`
	BatchTimeout      Duration          `hcl:"batch_timeout,optional" json:"batch_timeout"`
	ExportTimeout     Duration          `hcl:"export_timeout,optional" json:"export_timeout"`
	ExportConcurrency int               `hcl:"export_concurrency,optional" json:"export_concurrency"`
	ReportInterval    Duration          `hcl:"report_interval,optional" json:"report_interval"`
}

// SetDefaults fills the telemetry block's defaults.
func (t *TelemetryConfig) SetDefaults() {
	t.ServiceName = "sluice"
	t.setExportDefaults()
}

// TracesConfig is `telemetry { traces { … } }`.
type TracesConfig struct {
	Exporter       string   `hcl:"exporter,optional" json:"exporter"`
	Endpoint       string   `hcl:"endpoint,optional" json:"endpoint"`
	SampleRatio    *float64 `hcl:"sample_ratio,optional" json:"sample_ratio"`
	ResponseHeader string   `hcl:"response_header,optional" json:"response_header"`
	// FilterSpans records a child span per filter phase (default true).
	FilterSpans *bool `hcl:"filter_spans,optional" json:"filter_spans,omitempty"`
	// ServerTiming answers `Server-Timing: traceparent;desc="00-…"` (Trace Context Level 2).
	ServerTiming bool `hcl:"server_timing,optional" json:"server_timing,omitempty"`
}

// Validate checks the traces block.
func (t *TracesConfig) Validate() error {
	var errs []error
	switch t.Exporter {
	case "", "none", "otlp", "stdout":
	default:
		errs = append(errs, FieldErr("exporter", "unknown exporter %q: use otlp, stdout or none", t.Exporter))
	}
	if t.SampleRatio != nil && (*t.SampleRatio < 0 || *t.SampleRatio > 1) {
		errs = append(errs, FieldErr("sample_ratio", "must be between 0 and 1"))
	}
	return errors.Join(errs...)
}

// LogsConfig is `telemetry { logs { … } }`.
type LogsConfig struct {
	Endpoint string `hcl:"endpoint,optional" json:"endpoint"`
}

// RedisConfig is a `redis "NAME"` block.
type RedisConfig struct {
	Name     string   `json:"name"`
	Address  string   `hcl:"address,optional" json:"address"`
	Password string   `hcl:"password,optional" json:"password" sluice:"secret"`
	DB       int      `hcl:"db,optional" json:"db"`
	Timeout  Duration `hcl:"timeout,optional" json:"timeout"`
	// Sentinel or Cluster replace Address (redisclient.go).
	Sentinel *RedisSentinel `hcl:"sentinel,block" json:"sentinel,omitempty"`
	Cluster  *RedisCluster  `hcl:"cluster,block" json:"cluster,omitempty"`
}

// SetDefaults fills a redis block's defaults.
func (r *RedisConfig) SetDefaults() { r.Timeout = Duration(50 * time.Millisecond) }

// Validate checks a redis block.
func (r *RedisConfig) Validate() error {
	errs := r.validateTopology()
	if r.Timeout <= 0 {
		errs = append(errs, FieldErr("timeout", "must be positive"))
	}
	if r.DB < 0 {
		errs = append(errs, FieldErr("db", "must not be negative"))
	}
	return errors.Join(errs...)
}

// MatchConfig is a pipeline's `match` block.
type MatchConfig struct {
	Hosts      []string `hcl:"hosts,optional" json:"hosts,omitempty"`
	PathPrefix string   `hcl:"path_prefix,optional" json:"path_prefix"`
	Methods    []string `hcl:"methods,optional" json:"methods,omitempty"`
	// Listeners restricts the pipeline to requests that came through the named listeners;
	// empty: any listener.
	Listeners []string `hcl:"listeners,optional" json:"listeners,omitempty"`
	// PathRegex, an RE2 expression, must match the normalized path as well (router.go);
	// Headers, Query and Cookies are predicates on the request (match.go).
	PathRegex string       `hcl:"path_regex,optional" json:"path_regex,omitempty"`
	Headers   []ValueMatch `hcl:"header,block" json:"headers,omitempty"`
	Query     []ValueMatch `hcl:"query,block" json:"query,omitempty"`
	Cookies   []ValueMatch `hcl:"cookie,block" json:"cookies,omitempty"`
	// Keys test values native filters set with a route key (routekey.go).
	Keys []ValueMatch `hcl:"key,block" json:"keys,omitempty"`
	// RoutedOnly makes the pipeline serve only requests another pipeline's route block routed
	// (route.go), never a client's request directly.
	RoutedOnly bool `hcl:"routed_only,optional" json:"routed_only,omitempty"`
}

// Validate checks a match block.
func (m *MatchConfig) Validate() error {
	var errs []error
	if m.PathPrefix == "" {
		m.PathPrefix = "/"
	}
	if !strings.HasPrefix(m.PathPrefix, "/") {
		errs = append(errs, FieldErr("path_prefix", "must start with \"/\""))
	}
	for _, meth := range m.Methods {
		if meth == "" || strings.ToUpper(meth) != meth || strings.ContainsAny(meth, " \t/") {
			errs = append(errs, FieldErr("methods", "invalid method %q: use upper-case tokens such as \"GET\"", meth))
		}
	}
	for _, h := range m.Hosts {
		if h == "" || strings.ContainsAny(h, " /") {
			errs = append(errs, FieldErr("hosts", "invalid host %q", h))
			continue
		}
		// Requests with a host that is not a DNS name or an IP literal are refused
		// (admission.go), so such an entry could never match. IPv6 entries are left alone.
		if name := strings.TrimPrefix(h, "*."); !strings.Contains(name, ":") {
			if _, ok := canonicalHost(nil, []byte(name)); !ok {
				errs = append(errs, FieldErr("hosts", "invalid host %q: a host is a DNS name (letters, digits and hyphens in non-empty labels) or an IP address, and a request with another could never match", h))
			}
		}
	}
	errs = append(errs, m.validatePredicates()...)
	return errors.Join(errs...)
}

// validHeaderName reports whether n is a non-empty token (RFC 9110 §5.1).
func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
