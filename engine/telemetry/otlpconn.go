package telemetry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// directHTTP is the exporter's own HTTP/1.1 exchange with a collector at an http:// URL that no
// proxy stands in front of. net/http's transport runs every request through two goroutines of
// its connection (a writer and a reader) and the caller's, copies the body into the connection's
// write buffer, and builds the request and its header map each time: at 100 % sampling, with a
// batch of 512 spans every 64 requests, that was about 1 µs of CPU per request. Here the export's
// goroutine writes the request head and the encoded body with one writev, reads the response
// with net/http's own parser (http.ReadResponse, so chunked and length-delimited answers are
// read as net/http reads them), and keeps the connection for the next export.
//
// https:// URLs, and http:// ones the environment sends through a proxy (HTTP_PROXY), keep
// net/http's client: TLS, HTTP/2 and proxies are its business.
type directHTTP struct {
	addr   string // host:port dialled
	head   []byte // the request head up to Content-Length's value
	dialer net.Dialer

	mu      sync.Mutex
	idle    []*directConn // most recently used last
	maxIdle int
}

// directConn is one kept-alive connection to the collector.
type directConn struct {
	c    net.Conn
	br   *bufio.Reader
	used time.Time // when its last exchange ended
	hdr  []byte    // scratch for the request head
}

// directIdleTimeout is how long an idle connection is kept. A collector closes idle connections
// on its own schedule (the OpenTelemetry Collector's default is none, many proxies use 60 s or
// more); a connection unused this long is closed before an export rather than found closed.
const directIdleTimeout = 30 * time.Second

// newDirectHTTP returns the direct exchange for rawURL, or nil when net/http's client must be
// used (https, a proxy from the environment, headers that cannot be written as they are).
func newDirectHTTP(rawURL string, headers map[string]string, maxIdle int) *directHTTP {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.User != nil {
		return nil
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	// Headers sorted, so the head is the same from one start to the next.
	keys := make([]string, 0, len(headers))
	for k := range headers {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(headers[k]) {
			return nil // net/http refuses them with an error per export: keep that behaviour
		}
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection":
			return nil // set by the exchange itself; net/http decides what such a header means
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\n", path, u.Host)
	if !hasUserAgent(headers) {
		head = fmt.Appendf(head, "User-Agent: %s\r\n", UserAgent)
	}
	for _, k := range keys {
		head = fmt.Appendf(head, "%s: %s\r\n", http.CanonicalHeaderKey(k), headers[k])
	}
	head = append(head, "Content-Length: "...)
	return &directHTTP{addr: host, head: head, maxIdle: maxIdle}
}

// errStaleConn is a kept-alive connection the collector had closed before the request reached
// it: nothing was processed, and the request is sent again on a new connection.
var errStaleConn = errors.New("connection closed by the collector while idle")

// post sends body and returns the response (its body read) and the start of its body (at most
// 4 KiB, for the error message).
func (d *directHTTP) post(ctx context.Context, body []byte) (resp *http.Response, msg []byte, err error) {
	for attempt := 0; ; attempt++ {
		dc, reused := d.take()
		if dc == nil {
			c, err := d.dialer.DialContext(ctx, "tcp", d.addr)
			if err != nil {
				return nil, nil, err
			}
			dc = &directConn{c: c, br: bufio.NewReaderSize(c, 4<<10)}
		}
		resp, msg, err = d.exchange(ctx, dc, body, reused)
		if errors.Is(err, errStaleConn) && attempt == 0 {
			continue // once, on a new connection
		}
		return resp, msg, err
	}
}

// exchange is one request and its response on dc, which it keeps for reuse or closes.
func (d *directHTTP) exchange(ctx context.Context, dc *directConn, body []byte, reused bool) (*http.Response, []byte, error) {
	dl, _ := ctx.Deadline()
	_ = dc.c.SetDeadline(dl)
	// A cancelled export (the batcher shutting down) ends a blocked write or read at once.
	stop := context.AfterFunc(ctx, func() { _ = dc.c.SetDeadline(time.Unix(1, 0)) })
	keep := false
	defer func() {
		if !stop() || !keep {
			_ = dc.c.Close()
			return
		}
		d.put(dc)
	}()

	dc.hdr = strconv.AppendInt(append(dc.hdr[:0], d.head...), int64(len(body)), 10)
	dc.hdr = append(dc.hdr, "\r\n\r\n"...)
	bufs := net.Buffers{dc.hdr, body}
	if _, err := bufs.WriteTo(dc.c); err != nil {
		if reused && isStale(err) {
			return nil, nil, errStaleConn
		}
		return nil, nil, ctxErr(ctx, err)
	}
	// Nothing of a response came: the collector closed the connection before it read the
	// request. (http.ReadResponse reports that as io.ErrUnexpectedEOF, as it does a cut answer.)
	if _, err := dc.br.Peek(1); err != nil {
		if reused && (err == io.EOF || errors.Is(err, syscall.ECONNRESET)) {
			return nil, nil, errStaleConn
		}
		return nil, nil, ctxErr(ctx, fmt.Errorf("reading the collector's response: %w", err))
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(dc.br, nil)
		if err != nil {
			return nil, nil, ctxErr(ctx, fmt.Errorf("reading the collector's response: %w", err))
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		_ = resp.Body.Close() // 100 Continue, 103 Early Hints: the answer follows
	}
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return nil, nil, ctxErr(ctx, fmt.Errorf("reading the collector's response: %w", err))
	}
	// The connection is kept when the response ended where its body did and the collector did
	// not ask to close it; a longer body than read is not drained.
	var one [1]byte
	if n, err := resp.Body.Read(one[:]); n == 0 && err == io.EOF && !resp.Close {
		keep = true
	}
	return resp, msg, nil
}

// isStale reports whether err is how a connection the peer closed fails.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// ctxErr is err, or the context's error beside it when the context ended the exchange.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.Join(err, ctx.Err())
	}
	return err
}

// take returns the most recently used idle connection, closing those idle too long.
func (d *directHTTP) take() (*directConn, bool) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for n := len(d.idle); n > 0; n = len(d.idle) {
		dc := d.idle[n-1]
		d.idle[n-1] = nil
		d.idle = d.idle[:n-1]
		if now.Sub(dc.used) < directIdleTimeout {
			return dc, true
		}
		_ = dc.c.Close()
	}
	return nil, false
}

// put keeps dc for the next export, or closes it when maxIdle are kept already.
func (d *directHTTP) put(dc *directConn) {
	_ = dc.c.SetDeadline(time.Time{})
	dc.used = time.Now()
	d.mu.Lock()
	if len(d.idle) < d.maxIdle {
		d.idle = append(d.idle, dc)
		dc = nil
	}
	d.mu.Unlock()
	if dc != nil {
		_ = dc.c.Close()
	}
}

// closeIdle closes the idle connections (Shutdown).
func (d *directHTTP) closeIdle() {
	d.mu.Lock()
	idle := d.idle
	d.idle = nil
	d.mu.Unlock()
	for _, dc := range idle {
		_ = dc.c.Close()
	}
}
