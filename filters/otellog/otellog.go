package otellog

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/telemetry"
	"github.com/valyala/fasthttp"
)

// Register declares the "otel_log" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "otel_log", build)
}

const redacted = "[REDACTED]"

// header is one configured request header.
type header struct {
	name     string            // lower case, as logged
	key      engine.HeaderName // name, normalised once for the lookup
	redacted bool
}

// Filter writes one record per request in its response phase.
type Filter struct {
	text    bool
	headers []header
	// reqID is the server's request_id header ("": none); traces, whether the client's trace
	// headers are logged (fields.go).
	reqID  string
	reqIDh engine.HeaderName // reqID, normalised once for the lookup
	traces bool
	sink   *sink     // stdout, stderr, file
	otlp   *otlpSink // otlp
}

func build(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
	f := &Filter{text: cfg.Format == "text", traces: cfg.TraceHeaders}
	if env.Server != nil {
		f.reqID = env.Server.RequestID
		f.reqIDh = engine.NewHeaderName(f.reqID)
	}
	red := map[string]bool{}
	for _, h := range append(append([]string(nil), alwaysRedacted...), cfg.Redact...) {
		red[strings.ToLower(h)] = true
	}
	for _, h := range cfg.RequestHeaders {
		n := strings.ToLower(h)
		f.headers = append(f.headers, header{name: n, key: engine.NewHeaderName(n), redacted: red[n]})
	}
	switch cfg.Output {
	case "stdout", "stderr":
		if env.Validating {
			return f, nil
		}
		w := os.Stdout
		if cfg.Output == "stderr" {
			w = os.Stderr
		}
		f.sink = newSink(w, env.Logger)
	case "otlp":
		var endpoint string
		if env.Telemetry != nil {
			if env.Telemetry.Logs != nil {
				endpoint = env.Telemetry.Logs.Endpoint
			}
		}
		url, err := telemetry.SignalURL(endpoint, "/v1/logs")
		if err != nil {
			return nil, fmt.Errorf("telemetry.logs.endpoint: %w", err)
		}
		if env.Validating {
			return f, nil
		}
		if f.otlp, err = newOTLPSink(url, env.Telemetry, env.Logger); err != nil {
			return nil, err
		}
	default:
		path := env.Path(cfg.Output)
		if env.Validating {
			return f, checkFile(path)
		}
		s, err := openFileSink(path, int64(cfg.MaxSize), cfg.MaxBackups, env.Logger)
		if err != nil {
			return nil, err
		}
		f.sink = s
	}
	return f, nil
}

// OnRequest keeps the client's trace headers when they are logged (the balancer replaces them);
// the record is written once the response is final.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	if f.traces {
		keepTraceHeaders(c) // fields.go
	}
	return engine.Continue
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// OnResponse writes the request's record, or, when the response body streams, has it written
// once that body has ended (FinishResponse): its duration then covers the whole body, and a gRPC
// call's status has arrived in the trailers.
func (f *Filter) OnResponse(c *engine.Ctx) {
	if c.DeferFinish(f) {
		return
	}
	f.write(c, nil)
}

// FinishResponse writes the record of a request whose response body streamed, once it ended
// (engine.ResponseFinisher); cut is why it ended early, logged as the record's error.
func (f *Filter) FinishResponse(c *engine.Ctx, cut error) { f.write(c, cut) }

// write writes the request's record.
func (f *Filter) write(c *engine.Ctx, cut error) {
	now := time.Now()
	var th *traceHeaders
	if f.traces {
		th = takeTraceHeaders(c)
		defer releaseTraceHeaders(c, th)
	}
	if f.otlp != nil {
		f.otlp.emit(c, f, now, cut, th)
		return
	}
	if f.sink == nil {
		return // built for validation only
	}
	bp := bufPool.Get().(*[]byte)
	var b []byte
	if f.text {
		b = f.appendText((*bp)[:0], c, now, cut, th)
	} else {
		b = f.appendJSON((*bp)[:0], c, now, cut, th)
	}
	f.sink.write(b)
	*bp = b
	bufPool.Put(bp)
}

// CloseContext flushes and releases the output, giving up when ctx ends (the gateway's shutdown
// deadline): what could not be written or exported by then is counted and logged as lost.
func (f *Filter) CloseContext(ctx context.Context) error {
	if f.sink != nil {
		return f.sink.CloseContext(ctx)
	}
	if f.otlp != nil {
		return f.otlp.CloseContext(ctx)
	}
	return nil
}

// Close flushes and releases the output.
func (f *Filter) Close() error {
	if f.sink != nil {
		return f.sink.Close()
	}
	if f.otlp != nil {
		return f.otlp.Close()
	}
	return nil
}

// bodySize is the response body's length without reading a streamed body: once a streamed body
// ended, the bytes it had.
func bodySize(c *engine.Ctx) int {
	if n, ok := c.StreamedBytes(); ok {
		return int(n)
	}
	resp := c.Response
	if resp.IsBodyStream() {
		return max(resp.Header.ContentLength(), 0)
	}
	return len(resp.Body())
}

func durationMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// appendInt is strconv.AppendInt(b, v, 10), with the record's usual small numbers (a status, a
// count of attempts, a short body's length: under 1000) written without strconv's general
// formatter (about 60 instructions a number under callgrind).
func appendInt(b []byte, v int64) []byte {
	switch {
	case v < 0 || v >= 1000:
		return strconv.AppendInt(b, v, 10)
	case v < 10:
		return append(b, byte('0'+v))
	case v < 100:
		return append(b, byte('0'+v/10), byte('0'+v%10))
	}
	return append(b, byte('0'+v/100), byte('0'+v/10%10), byte('0'+v%10))
}

// appendMS appends d in milliseconds with three decimals ("12.345"), without float formatting.
func appendMS(b []byte, d time.Duration) []byte {
	us := max(d.Microseconds(), 0)
	b = appendInt(b, us/1000)
	frac := us % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

func (f *Filter) appendJSON(b []byte, c *engine.Ctx, now time.Time, cut error, th *traceHeaders) []byte {
	req := c.Request
	start := c.Start
	if start.IsZero() {
		start = now
	}
	b = append(b, `{"time":"`...)
	b = appendTime(b, start) // timefmt.go
	b = append(b, `","method":`...)
	b = appendJSONString(b, req.Header.Method())
	b = append(b, `,"host":`...)
	b = appendJSONString(b, req.Header.Host())
	b = append(b, `,"path":`...)
	b = appendJSONString(b, rawPath(req))
	b = append(b, `,"status":`...)
	b = appendInt(b, int64(c.Response.StatusCode()))
	if code, ok := engine.GRPCStatusOf(c); ok {
		b = append(b, `,"grpc_status":`...)
		b = appendInt(b, int64(code))
	}
	b = append(b, `,"bytes":`...)
	b = appendInt(b, int64(bodySize(c)))
	b = append(b, `,"duration_ms":`...)
	b = appendMS(b, now.Sub(start))
	b = append(b, `,"upstream_ms":`...)
	b = appendMS(b, c.UpstreamTime)
	b = append(b, `,"client":"`...)
	if c.ClientAddr.IsValid() {
		b = c.ClientAddr.AppendTo(b)
	}
	b = append(b, '"')
	if cc, ok := engine.ClientCertKey.Get(c); ok {
		b = appendCertJSON(b, cc)
	}
	if cons, ok := engine.ConsumerKey.Get(c); ok && cons != nil {
		b = append(b, `,"consumer":`...)
		b = appendJSONStringS(b, cons.ID)
		b = append(b, `,"auth_method":`...)
		b = appendJSONStringS(b, cons.Method)
	}
	b = append(b, `,"upstream":`...)
	b = appendJSONStringS(b, c.Target)
	b = append(b, `,"attempts":`...)
	b = appendInt(b, int64(c.Attempts))
	b = append(b, `,"pipeline":`...)
	if p := c.ServingPipeline(); p != nil {
		b = appendJSONStringS(b, p.Name)
	} else {
		b = append(b, `""`...)
	}
	if e := c.EntryPipeline(); e != c.ServingPipeline() {
		// A route handed the request on: pipeline is the one that served it.
		b = append(b, `,"entry_pipeline":`...)
		b = appendJSONStringS(b, e.Name)
	}
	if c.Proto != "" {
		b = append(b, `,"protocol":`...)
		b = appendJSONStringS(b, c.Proto)
	}
	if sc := telemetry.SpanContext(c); sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		b = append(b, `,"trace_id":"`...)
		b = hex.AppendEncode(b, tid[:])
		b = append(b, `","span_id":"`...)
		b = hex.AppendEncode(b, sid[:])
		b = append(b, '"')
	}
	if len(f.headers) > 0 {
		b = append(b, `,"request_headers":{`...)
		first := true
		for _, h := range f.headers {
			v := h.key.Peek(&req.Header)
			if v == nil {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONStringS(b, h.name)
			b = append(b, ':')
			if h.redacted {
				b = append(b, `"`+redacted+`"`...)
			} else {
				b = appendJSONString(b, v)
			}
		}
		b = append(b, '}')
	}
	b = f.appendOutcomeJSON(b, c, th) // fields.go
	if err := recordError(c, cut); err != nil {
		b = append(b, `,"error":`...)
		b = appendJSONStringS(b, err.Error())
	}
	return append(b, "}\n"...)
}

func (f *Filter) appendText(b []byte, c *engine.Ctx, now time.Time, cut error, th *traceHeaders) []byte {
	req := c.Request
	start := c.Start
	if start.IsZero() {
		start = now
	}
	b = append(b, "time="...)
	b = appendTime(b, start) // timefmt.go
	b = append(b, " method="...)
	b = appendTextValue(b, req.Header.Method())
	b = append(b, " host="...)
	b = appendTextValue(b, req.Header.Host())
	b = append(b, " path="...)
	b = appendTextValue(b, rawPath(req))
	b = append(b, " status="...)
	b = appendInt(b, int64(c.Response.StatusCode()))
	if code, ok := engine.GRPCStatusOf(c); ok {
		b = append(b, " grpc_status="...)
		b = appendInt(b, int64(code))
	}
	b = append(b, " bytes="...)
	b = appendInt(b, int64(bodySize(c)))
	b = append(b, " duration_ms="...)
	b = appendMS(b, now.Sub(start))
	b = append(b, " upstream_ms="...)
	b = appendMS(b, c.UpstreamTime)
	b = append(b, " client="...)
	if c.ClientAddr.IsValid() {
		b = c.ClientAddr.AppendTo(b)
	} else {
		b = append(b, `""`...)
	}
	if cc, ok := engine.ClientCertKey.Get(c); ok {
		b = appendCertText(b, cc)
	}
	if cons, ok := engine.ConsumerKey.Get(c); ok && cons != nil {
		b = append(b, " consumer="...)
		b = appendTextValueS(b, cons.ID)
		b = append(b, " auth_method="...)
		b = appendTextValueS(b, cons.Method)
	}
	b = append(b, " upstream="...)
	b = appendTextValueS(b, c.Target)
	b = append(b, " attempts="...)
	b = appendInt(b, int64(c.Attempts))
	b = append(b, " pipeline="...)
	if p := c.ServingPipeline(); p != nil {
		b = appendTextValueS(b, p.Name)
	} else {
		b = append(b, `""`...)
	}
	if e := c.EntryPipeline(); e != c.ServingPipeline() {
		b = append(b, " entry_pipeline="...)
		b = appendTextValueS(b, e.Name)
	}
	if c.Proto != "" {
		b = append(b, " protocol="...)
		b = appendTextValueS(b, c.Proto)
	}
	if sc := telemetry.SpanContext(c); sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		b = append(b, " trace_id="...)
		b = hex.AppendEncode(b, tid[:])
		b = append(b, " span_id="...)
		b = hex.AppendEncode(b, sid[:])
	}
	b = f.appendOutcomeText(b, c, th) // fields.go
	for _, h := range f.headers {
		v := h.key.Peek(&req.Header)
		if v == nil {
			continue
		}
		b = append(b, " header."...)
		b = append(b, h.name...)
		b = append(b, '=')
		if h.redacted {
			b = append(b, redacted...)
		} else {
			b = appendTextValue(b, v)
		}
	}
	if err := recordError(c, cut); err != nil {
		b = append(b, " error="...)
		b = appendTextValueS(b, err.Error())
	}
	return append(b, '\n')
}

// recordError is the record's error: the request's failure, else why its streamed response was
// cut.
func recordError(c *engine.Ctx, cut error) error {
	if c.Failure != nil {
		return c.Failure
	}
	return cut
}

// appendCertJSON appends the "client_cert" member: the verified client certificate's identity.
func appendCertJSON(b []byte, cc *engine.ClientCert) []byte {
	b = append(b, `,"client_cert":{"subject":`...)
	b = appendJSONStringS(b, cc.Subject)
	b = append(b, `,"fingerprint":"`...)
	b = append(b, cc.Fingerprint...)
	b = append(b, `","serial":"`...)
	b = append(b, cc.Serial...)
	b = append(b, `","not_after":"`...)
	b = cc.NotAfter.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, '"')
	for _, l := range [2]struct {
		name  string
		names []string
	}{{`,"uri_sans":[`, cc.URISANs}, {`,"dns_sans":[`, cc.DNSSANs}} {
		if len(l.names) == 0 {
			continue
		}
		b = append(b, l.name...)
		for i, n := range l.names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONStringS(b, n)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendCertText appends the client_cert.* fields (SAN lists joined with ',').
func appendCertText(b []byte, cc *engine.ClientCert) []byte {
	b = append(b, " client_cert.subject="...)
	b = appendTextValueS(b, cc.Subject)
	b = append(b, " client_cert.fingerprint="...)
	b = append(b, cc.Fingerprint...)
	b = append(b, " client_cert.serial="...)
	b = append(b, cc.Serial...)
	b = append(b, " client_cert.not_after="...)
	b = cc.NotAfter.UTC().AppendFormat(b, time.RFC3339)
	if len(cc.URISANs) > 0 {
		b = append(b, " client_cert.uri_sans="...)
		b = appendTextValueS(b, strings.Join(cc.URISANs, ","))
	}
	if len(cc.DNSSANs) > 0 {
		b = append(b, " client_cert.dns_sans="...)
		b = appendTextValueS(b, strings.Join(cc.DNSSANs, ","))
	}
	return b
}

// appendTextValue writes v bare when it is a simple token, else as a quoted, escaped string
// (logfmt), so a value can never forge another field or line.
func appendTextValue(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, `""`...)
	}
	for _, c := range v {
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f {
			return appendJSONString(b, v)
		}
	}
	return append(b, v...)
}

func appendTextValueS(b []byte, s string) []byte {
	if len(s) == 0 {
		return append(b, `""`...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f {
			return appendJSONStringS(b, s)
		}
	}
	return append(b, s...)
}

// appendJSONString appends v as a JSON string: quotes, backslashes and control characters are
// escaped and invalid UTF-8 becomes U+FFFD, so client-controlled bytes cannot break the line.
// Runs of plain ASCII are copied at once.
func appendJSONString(b, v []byte) []byte {
	b = append(b, '"')
	for i := 0; i < len(v); {
		j := i
		for j < len(v) && plainASCII[v[j]] {
			j++
		}
		b = append(b, v[i:j]...)
		if j == len(v) {
			break
		}
		i = j
		c := v[i]
		if c < utf8.RuneSelf {
			b = appendJSONByte(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, v[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func appendJSONStringS(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && plainASCII[s[j]] {
			j++
		}
		b = append(b, s[i:j]...)
		if j == len(s) {
			break
		}
		i = j
		c := s[i]
		if c < utf8.RuneSelf {
			b = appendJSONByte(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// plainASCII marks the bytes a JSON string holds unescaped.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func appendJSONByte(b []byte, c byte) []byte {
	switch c {
	case '"':
		return append(b, `\"`...)
	case '\\':
		return append(b, `\\`...)
	case '\n':
		return append(b, `\n`...)
	case '\r':
		return append(b, `\r`...)
	case '\t':
		return append(b, `\t`...)
	}
	if c < 0x20 || c == 0x7f {
		const hexd = "0123456789abcdef"
		return append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
	}
	return append(b, c)
}

// rawPath is the client's raw request path, read from the request-target without fasthttp's
// URI parser, whose cached result can belong to another target (strip_prefix's) or rebuild the
// request-target when something asks for it later.
func rawPath(req *fasthttp.Request) []byte {
	p, _ := engine.RawPath(req)
	return p
}
