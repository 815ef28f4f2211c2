package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpHTTPExporter posts spans to an OTLP/HTTP collector as protobuf, encoded by
// appendExportRequest into a pooled buffer. It keeps the policy of the SDK's otlptracehttp
// exporter, which it replaces: the same headers (the telemetry block's, else
// OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TRACES_HEADERS), one timeout per export
// call, retries with exponential backoff (0.5 s doubling up to 5 s, jittered, honouring
// Retry-After) on 429, 502, 503 and 504 until that timeout, and no retry of a refused or
// failed connection.
type otlpHTTPExporter struct {
	url     string
	headers map[string]string
	client  *http.Client
	timeout time.Duration
	bufs    sync.Pool // *[]byte
	// direct is the exporter's own HTTP/1.1 exchange (otlpconn.go), for an http:// collector
	// without a proxy; nil: client's.
	direct *directHTTP
}

var _ sdktrace.SpanExporter = (*otlpHTTPExporter)(nil)

// exportWriteBuffer is the write buffer of each collector connection.
const exportWriteBuffer = 256 << 10

// Retry policy (as configured for otlptracehttp before).
const (
	retryInitial = 500 * time.Millisecond
	retryMax     = 5 * time.Second
)

func newOTLPHTTPExporter(url string, cfg *engine.TelemetryConfig) *otlpHTTPExporter {
	h := ExportHeaders(cfg, SignalTraces)
	if h == nil {
		h = map[string]string{}
		parseOTLPHeaders(h, os.Getenv("OTEL_EXPORTER_OTLP_HEADERS"))
		parseOTLPHeaders(h, os.Getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS"))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A batch (512 spans: about 130 KiB) fits the connection's write buffer whole: net/http then
	// writes the request in one system call. With its default 4 KiB buffer, the body went to the
	// socket through io.Copy behind a LimitReader, which allocated 32 KiB per export (most of what
	// tracing allocated, and so most of its garbage collection) and wrote it 32 KiB at a time.
	tr.WriteBufferSize = exportWriteBuffer
	// Every concurrent export keeps its connection: the default (2 idle per host) closed and
	// redialled the others after each export.
	tr.MaxIdleConnsPerHost = max(batchConfigOf(cfg).concurrency, 2)
	return &otlpHTTPExporter{url: url, headers: h, timeout: exportTimeoutOf(cfg), client: &http.Client{Transport: tr},
		direct: newDirectHTTP(url, h, tr.MaxIdleConnsPerHost)}
}

// useOwnExporter reports whether the environment leaves the OTLP trace export to this package's
// exporter: settings only the SDK's exporter reads (TLS files, compression, insecure) keep it.
func useOwnExporter() bool {
	for _, k := range []string{"CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY", "COMPRESSION", "INSECURE"} {
		if os.Getenv("OTEL_EXPORTER_OTLP_"+k) != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_"+k) != "" {
			return false
		}
	}
	return true
}

// ExportSpans encodes spans and posts them, retrying as the policy says, within the export
// timeout (and ctx, the batcher's).
func (e *otlpHTTPExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	return e.export(ctx, spans, false)
}

// export is ExportSpans; with free, the observer's records among spans go back for reuse as soon
// as they are encoded (the batcher's call: nothing reads them afterwards), while they are still
// in cache from the encoding and before the collector's round trip, rather than after it.
func (e *otlpHTTPExporter) export(ctx context.Context, spans []sdktrace.ReadOnlySpan, free bool) error {
	if len(spans) == 0 {
		return nil
	}
	bp, _ := e.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	body := appendExportRequest((*bp)[:0], spans)
	if free {
		freeAll(spans)
	}
	defer func() {
		*bp = body[:0]
		e.bufs.Put(bp)
	}()
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	wait := retryInitial
	for {
		retryAfter, err := e.post(ctx, body)
		if retryAfter < 0 {
			return err // sent, or failed for good
		}
		d := wait/2 + rand.N(wait/2+1) // jittered, as the SDK's backoff
		if retryAfter > d {
			d = retryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return fmt.Errorf("%w (no time left to retry)", err)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, retryMax)
	}
}

// post sends body once. It returns the error and, when the collector asked to retry, how long
// it asked to wait (0: as the backoff says); -1 when there is nothing to retry.
func (e *otlpHTTPExporter) post(ctx context.Context, body []byte) (time.Duration, error) {
	var resp *http.Response
	var msg []byte
	var err error
	if e.direct != nil {
		if resp, msg, err = e.direct.post(ctx, body); err != nil {
			// As net/http's client says it: the method and URL, then why.
			err = &url.Error{Op: "Post", URL: e.url, Err: err}
		}
	} else {
		resp, msg, err = e.clientPost(ctx, body)
	}
	if err != nil {
		return -1, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return -1, nil
	}
	err = fmt.Errorf("failed to send to %s: %s", e.url, resp.Status)
	if len(msg) > 0 && !bytes.ContainsFunc(msg, func(r rune) bool { return r < ' ' && r != '\t' }) {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(msg)))
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		var after time.Duration
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return after, err
	}
	return -1, err
}

// UserAgent is the User-Agent of the gateway's own OTLP trace exporter, unless the telemetry
// block's headers set one: the OTLP specification asks an exporter to name itself, its language
// and its version, so that a collector's operator can tell who sends what. cmd/sluice adds the
// build's version before the exporter starts.
var UserAgent = "Sluice-OTLP-Exporter-Go"

// hasUserAgent reports whether headers set User-Agent (in any case).
func hasUserAgent(headers map[string]string) bool {
	for k := range headers {
		if strings.EqualFold(k, "User-Agent") {
			return true
		}
	}
	return false
}

// clientPost is post through net/http's client.
func (e *otlpHTTPExporter) clientPost(ctx context.Context, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", UserAgent) // a configured User-Agent header replaces it
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	// Read the body (a partial-success message, or why it failed) so the connection is reused.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	return resp, msg, nil
}

// Shutdown closes the exporter's idle connections.
func (e *otlpHTTPExporter) Shutdown(context.Context) error {
	e.client.CloseIdleConnections()
	if e.direct != nil {
		e.direct.closeIdle()
	}
	return nil
}
