package balancer_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/filters/balancer"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// h2Upstream is a net/http upstream on 127.0.0.1 speaking h2c (tlsConf nil) or TLS with h2 and
// HTTP/1.1 by ALPN. conns counts the connections it accepted.
type h2Upstream struct {
	Addr  string
	Srv   *http.Server
	conns atomic.Int32
}

func startH2Upstream(t testing.TB, h http.Handler, tlsConf *tls.Config, maxStreams int) *h2Upstream {
	t.Helper()
	return startUpstreamWith(t, h, tlsConf, maxStreams, nil)
}

// startUpstreamWith is startH2Upstream speaking protos (nil: h2c, or HTTP/1.1 and h2 on TLS).
func startUpstreamWith(t testing.TB, h http.Handler, tlsConf *tls.Config, maxStreams int, protos *http.Protocols) *h2Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &h2Upstream{Addr: ln.Addr().String()}
	var p http.Protocols
	switch {
	case protos != nil:
		p = *protos
	case tlsConf == nil:
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	u.Srv = &http.Server{
		Handler:   h,
		Protocols: &p,
		TLSConfig: tlsConf,
		HTTP2:     &http.HTTP2Config{MaxConcurrentStreams: maxStreams},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
		ErrorLog: quietLog(),
	}
	go func() {
		if tlsConf != nil {
			_ = u.Srv.ServeTLS(ln, "", "")
		} else {
			_ = u.Srv.Serve(ln)
		}
	}()
	t.Cleanup(func() { _ = u.Srv.Close() })
	return u
}

// h2Config is a gateway config with upstream "u" speaking protocol to targets, each target
// block getting targetExtra, the upstream block upstreamExtra.
func h2Config(server, protocol string, targets []string, targetExtra, upstreamExtra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server {\n%s\n}\nupstream \"u\" {\n  protocol = %q\n", server, protocol)
	for _, t := range targets {
		fmt.Fprintf(&b, "  target {\n    address = %q\n%s\n  }\n", t, targetExtra)
	}
	b.WriteString(upstreamExtra)
	b.WriteString(`
}
pipeline "root" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.u
  }
}
`)
	return b.String()
}

// echoH2 answers with what it received: protocol, request-target, a few headers and the body.
func echoH2(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Up-Proto", r.Proto)
	w.Header().Set("X-Up-URI", r.RequestURI)
	w.Header().Set("X-Up-Host", r.Host)
	w.Header().Set("X-Up-XFF", r.Header.Get("X-Forwarded-For"))
	w.Header().Set("X-Up-Via", r.Header.Get("Via"))
	w.Header().Set("X-Up-UA", fmt.Sprint(r.Header.Values("User-Agent")))
	w.Header().Set("X-Up-Conn-Header", r.Header.Get("X-Hop"))
	w.Header().Add("Set-Cookie", "a=1")
	w.Header().Add("Set-Cookie", "b=2")
	w.WriteHeader(201)
	_, _ = fmt.Fprintf(w, "%s %d %s", r.Method, len(body), body)
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// TestH2CRoundTrip: an HTTP/1.1 client's requests reach an h2c upstream as HTTP/2 with the
// raw path, forwarding headers and body; the response comes back with its status and headers.
func TestH2CRoundTrip(t *testing.T) {
	up := startH2Upstream(t, http.HandlerFunc(echoH2), nil, 0)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{up.Addr}, "", ""))

	resp, body := rawRequest(t, gw.Addr, "GET /a%41b/c?q=1&r=%20 HTTP/1.1\r\nHost: example.test\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n")
	if resp.StatusCode != 201 || string(body) != "GET 0 " {
		t.Fatalf("%d %q, want 201 \"GET 0 \"", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"X-Up-Proto": "HTTP/2.0", "X-Up-URI": "/a%41b/c?q=1&r=%20", "X-Up-Host": "example.test",
		"X-Up-XFF": "127.0.0.1", "X-Up-Via": "1.1 sluice", "X-Up-UA": "[]", "X-Up-Conn-Header": "",
		"Via": "1.1 sluice",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 {
		t.Errorf("Set-Cookie %q, want both", got)
	}

	payload := strings.Repeat("p", 100000)
	resp, body = rawRequest(t, gw.Addr, "POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"+payload)
	if resp.StatusCode != 201 || string(body) != "POST 100000 "+payload {
		t.Fatalf("%d %.40q, want the 100000 bytes echoed", resp.StatusCode, body)
	}
	if up.conns.Load() != 1 {
		t.Errorf("%d upstream connections, want 1 for both requests", up.conns.Load())
	}
}

// TestH2ConcurrentStreamsShareConns: requests in flight at once share the target's HTTP/2
// connections, as many streams on each as the target's SETTINGS_MAX_CONCURRENT_STREAMS allows,
// and never more connections than max_connections_per_target.
func TestH2ConcurrentStreamsShareConns(t *testing.T) {
	const n, maxStreams, maxConns = 8, 4, 2
	var inflight atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	up := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inflight.Add(1) == n {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
			_, _ = io.WriteString(w, "together")
		case <-time.After(10 * time.Second):
			w.WriteHeader(500) // the n requests never were in flight at once
		}
	}), nil, maxStreams)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{up.Addr}, "", fmt.Sprintf("  max_connections_per_target = %d\n", maxConns)))
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			codes[i], _, _ = get(t, gatewaytest.Client(), gw.URL+"/x")
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d, want 200 (all %d in flight at once)", i, c, n)
		}
	}
	if got := up.conns.Load(); got != maxConns {
		t.Errorf("%d upstream connections for %d concurrent streams of at most %d each, want %d", got, n, maxStreams, maxConns)
	}
}

// grpcLike answers like a gRPC server: application/grpc, a body, then grpc-status trailers.
func grpcLike(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.Header().Set("X-Up-TE", r.Header.Get("Te"))
	_, _ = io.WriteString(w, "message-1;")
	w.(http.Flusher).Flush()
	_, _ = io.WriteString(w, "message-2;")
	w.Header().Set("Grpc-Status", "7")
	w.Header().Set("Grpc-Message", "denied")
}

// TestH2TrailersReachHTTP1Client: an HTTP/2 upstream's trailers reach an HTTP/1.1 client after
// its chunked body: a gRPC response (streamed at once, trailers announced up front), and an
// ordinary response the gateway holds.
func TestH2TrailersReachHTTP1Client(t *testing.T) {
	up := startH2Upstream(t, http.NewServeMux(), nil, 0)
	mux := up.Srv.Handler.(*http.ServeMux)
	mux.HandleFunc("/grpc", grpcLike)
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "held body")
		w.Header().Set("X-Checksum", "abc")
	})
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{up.Addr}, "", ""))
	resp, body := rawRequest(t, gw.Addr, "POST /grpc HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "message-1;message-2;" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Up-TE"); got != "trailers" {
		t.Errorf("the gRPC upstream got TE %q, want trailers", got)
	}
	// net/http's client moves the Trailer header into resp.Trailer: look at the head itself.
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "POST /grpc HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	if !strings.Contains(head, "\r\nTrailer: Grpc-") || !strings.Contains(head, "Transfer-Encoding: chunked") {
		t.Errorf("the streamed response does not announce its trailers:\n%s", head)
	}
	if got := resp.Trailer.Get("Grpc-Status") + "|" + resp.Trailer.Get("Grpc-Message"); got != "7|denied" {
		t.Errorf("trailers %v, want Grpc-Status 7 and Grpc-Message denied", resp.Trailer)
	}
	resp, body = rawRequest(t, gw.Addr, "GET /plain HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "held body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("%d %q trailers %v, want the held body and X-Checksum abc", resp.StatusCode, body, resp.Trailer)
	}
}

// TestH2LargeStreamedResponse: a response far larger than max_response_bytes flows through
// from an HTTP/2 upstream with the gateway's heap bounded.
func TestH2LargeStreamedResponse(t *testing.T) {
	const size = 256 << 20
	chunk := make([]byte, 64<<10)
	up := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}), nil, 0)
	gw := gatewaytest.Start(t, h2Config(`  max_response_bytes = "1MiB"`, "h2c", []string{up.Addr}, "", "  timeouts {\n    request = \"60s\"\n  }\n"))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	_, _ = io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	close(stop)
	<-sampled
	if err != nil || n != size || resp.ContentLength != size {
		t.Fatalf("read %d of %d bytes (Content-Length %d): %v", n, size, resp.ContentLength, err)
	}
	// The bound: the HTTP/2 flow-control windows (4 MiB per connection on the upstream side)
	// and a few copy buffers, nowhere near the body.
	const bound = 48 << 20
	if grew := int64(peak.Load()) - int64(base.HeapInuse); grew > bound {
		t.Errorf("heap grew by %d MiB streaming %d MiB, want under %d MiB", grew>>20, size>>20, bound>>20)
	}
	t.Logf("heap in use: %d MiB before, %d MiB at the peak", base.HeapInuse>>20, peak.Load()>>20)
}

// serveDirect builds src and returns its upstream "u", to be served Ctxs built by the test.
func serveDirect(t testing.TB, src string) engine.Upstream {
	t.Helper()
	gw := gatewaytest.Build(t, src, t.TempDir())
	t.Cleanup(func() { _ = gw.Close() })
	return gw.Upstreams["u"]
}

// TestH2StreamedRequestBody: a request body that is a stream (fasthttp's StreamRequestBody, or
// an HTTP/2 client's) reaches the upstream as it comes: the upstream answers the first part
// before the rest exists.
func TestH2StreamedRequestBody(t *testing.T) {
	firstSeen := make(chan struct{})
	up := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil || string(buf) != "first" {
			w.WriteHeader(400)
			return
		}
		close(firstSeen)
		rest, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s+%d", buf, len(rest))
	}), nil, 0)
	u := serveDirect(t, h2Config("", "h2c", []string{up.Addr}, "", ""))
	c := enginetest.NewCtx(t, "POST", "/upload")
	pr, pw := io.Pipe()
	c.Request.SetBodyStream(pr, -1)
	go func() {
		_, _ = io.WriteString(pw, "first")
		select {
		case <-firstSeen: // the upstream has the first part: the gateway did not wait for the end
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("the upstream never saw the first part before the end"))
			return
		}
		_, _ = pw.Write(make([]byte, 1<<20))
		_ = pw.Close()
	}()
	u.Serve(c)
	if c.Response.StatusCode() != 200 || string(c.Response.Body()) != fmt.Sprintf("first+%d", 1<<20) {
		t.Fatalf("%d %q (failure %v)", c.Response.StatusCode(), c.Response.Body(), c.Failure)
	}
}

// TestH2ClientGoneAbortsUpstream: when the client's request ends (an HTTP/2 client's stream
// reset: c.ClientContext cancelled) the upstream's stream is reset at once, and the target is not
// blamed for it.
func TestH2ClientGoneAbortsUpstream(t *testing.T) {
	started := make(chan struct{})
	aborted := make(chan struct{})
	up := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(aborted)
		case <-time.After(10 * time.Second):
		}
	}), nil, 0)
	u := serveDirect(t, h2Config("", "h2c", []string{up.Addr}, "", "  outlier_detection {\n    consecutive_failures = 1\n  }\n"))
	c := enginetest.NewCtx(t, "GET", "/slow")
	ctx, cancel := context.WithCancel(context.Background())
	c.ClientContext = ctx
	go func() {
		<-started
		cancel()
	}()
	begin := time.Now()
	u.Serve(c)
	if !errors.Is(c.Failure, balancer.ErrClientGone) {
		t.Errorf("failure %v, want the client gone", c.Failure)
	}
	select {
	case <-aborted:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream's stream was not reset")
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Serve took %v after the client left", d)
	}
	st := u.(engine.UpstreamStatus).Status().(balancer.Status)
	if ts := st.Targets[0]; ts.Failures != 0 || ts.EjectedUntil != nil || !ts.Available {
		t.Errorf("the target was blamed for the client leaving: %+v", ts)
	}
}

// TestH2ClientDisconnectAbortsStream: an HTTP/1.1 client that disconnects in the middle of a
// streamed response (server-sent events) ends the upstream's stream.
func TestH2ClientDisconnectAbortsStream(t *testing.T) {
	aborted := make(chan struct{})
	up := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				break
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(aborted)
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		close(aborted)
	}), nil, 0)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{up.Addr}, "", ""))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Server-sent events stream as they come: the first event arrives while the stream is open.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: 0\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	conn.Close()
	select {
	case <-aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream stream outlived the client's connection")
	}
}

// TestH2GoawayNoFailedRequests: a target shut down gracefully (GOAWAY) under load fails no
// request: streams it had taken finish, others go to a new connection or the other target.
func TestH2GoawayNoFailedRequests(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	})
	a := startH2Upstream(t, handler, nil, 0)
	b := startH2Upstream(t, handler, nil, 0)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{a.Addr, b.Addr}, "", "  retry {\n    attempts = 2\n    budget_percent = 100 # every request sent to the stopped target fails to connect\n  }\n"))
	var ok, failed atomic.Int32
	var lastFail atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			cl := gatewaytest.Client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				method := "GET"
				if ok.Load()%2 == 0 {
					method = "POST" // not idempotent: only what the target never took may be sent again
				}
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI(gw.URL + "/x")
				req.Header.SetMethod(method)
				err := cl.DoTimeout(req, resp, 10*time.Second)
				if err != nil || resp.StatusCode() != 200 {
					failed.Add(1)
					lastFail.Store(fmt.Sprintf("%s: %d %v", method, resp.StatusCode(), err))
				} else {
					ok.Add(1)
				}
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
			}
		})
	}
	waitFor(t, 10*time.Second, "traffic", func() bool { return ok.Load() > 200 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Srv.Shutdown(ctx); err != nil { // GOAWAY, then the in-flight streams finish
		t.Fatal(err)
	}
	before := ok.Load()
	waitFor(t, 10*time.Second, "traffic after the shutdown", func() bool { return ok.Load() > before+200 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across a graceful shutdown; last: %v\n%s", n, n+ok.Load(), lastFail.Load(), gw.Logs())
	}
}

// TestH2HealthCheck: active checks go over HTTP/2 and mark an h2 target down and up again.
func TestH2HealthCheck(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	var probeProto atomic.Value
	up := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probeProto.Store(r.Proto)
			if !healthy.Load() {
				w.WriteHeader(503)
			}
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), nil, 0)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{up.Addr}, "",
		"  health_check {\n    interval = \"50ms\"\n    healthy_threshold = 1\n    unhealthy_threshold = 1\n  }\n"))
	if p := targetStatus(t, gw, up.Addr).Protocol; p != "h2c" {
		t.Errorf("/upstreams says protocol %q, want h2c", p)
	}
	waitFor(t, 5*time.Second, "a probe", func() bool { return probeProto.Load() != nil })
	if p := probeProto.Load(); p != "HTTP/2.0" {
		t.Errorf("probe over %v, want HTTP/2.0", p)
	}
	healthy.Store(false)
	waitFor(t, 5*time.Second, "marked unhealthy", func() bool { return !targetStatus(t, gw, up.Addr).Healthy })
	if code, _, _ := get(t, gatewaytest.Client(), gw.URL+"/x"); code != 503 {
		t.Errorf("%d with the only target unhealthy, want 503", code)
	}
	healthy.Store(true)
	waitFor(t, 5*time.Second, "healthy again", func() bool { return targetStatus(t, gw, up.Addr).Healthy })
	if code, body, _ := get(t, gatewaytest.Client(), gw.URL+"/x"); code != 200 || string(body) != "ok" {
		t.Errorf("%d %q once healthy again", code, body)
	}
}

// TestH2Timeouts: timeouts.request and retry.per_try_timeout bound an HTTP/2 exchange (504),
// and a connect failure is retried on the other target.
func TestH2Timeouts(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	slow := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}), nil, 0)
	fast := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "fast") }), nil, 0)

	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{slow.Addr}, "", "  timeouts {\n    request = \"300ms\"\n  }\n"))
	begin := time.Now()
	code, _, _ := get(t, gatewaytest.Client(), gw.URL+"/x")
	if d := time.Since(begin); code != 504 || d > 3*time.Second {
		t.Errorf("%d after %v, want 504 after about 300ms", code, d)
	}

	gw = gatewaytest.Start(t, h2Config("", "h2c", []string{slow.Addr, fast.Addr}, "",
		"  policy = \"round_robin\"\n  retry {\n    attempts = 1\n    on = [\"timeout\"]\n    per_try_timeout = \"200ms\"\n  }\n"))
	for range 4 {
		if code, body, _ := get(t, gatewaytest.Client(), gw.URL+"/x"); code != 200 || string(body) != "fast" {
			t.Fatalf("%d %q, want the slow target's per-try timeout retried on the fast one", code, body)
		}
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	gw = gatewaytest.Start(t, h2Config("", "h2c", []string{dead, fast.Addr}, "", ""))
	for range 4 {
		if code, body, _ := get(t, gatewaytest.Client(), gw.URL+"/x"); code != 200 || string(body) != "fast" {
			t.Fatalf("%d %q, want the refused connection retried on the live target", code, body)
		}
	}
}

// TestH2BothSides: an HTTP/2 client (h2c) through the gateway to an h2c upstream: a request body
// without a length streams through to the upstream as it is sent, the response streams back, and
// the client cancelling its request resets the upstream's stream.
func TestH2BothSides(t *testing.T) {
	firstSeen := make(chan struct{})
	aborted := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			w.WriteHeader(400)
			return
		}
		close(firstSeen)
		rest, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s %s+%d", r.Proto, buf, len(rest))
	})
	started := make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		close(started)
		select {
		case <-r.Context().Done():
			close(aborted)
		case <-time.After(10 * time.Second):
		}
	})
	up := startH2Upstream(t, mux, nil, 0)
	gw := gatewaytest.Start(t, h2Config(`  protocols = ["http1", "h2c"]`, "h2c", []string{up.Addr}, "", ""))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &p}}

	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "first")
		select {
		case <-firstSeen:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("the upstream never saw the first part before the end"))
			return
		}
		_, _ = pw.Write(make([]byte, 1<<20))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", gw.URL+"/upload", pr)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("HTTP/2.0 first+%d", 1<<20); resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || string(body) != want {
		t.Fatalf("%s %d %q, want HTTP/2.0 200 %q\n%s", resp.Proto, resp.StatusCode, body, want, gw.Logs())
	}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", gw.URL+"/hang", nil)
	go func() {
		<-started
		cancel() // resets the client's stream while the gateway waits for the upstream's body
	}()
	if resp, err = client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("%d: the request was not cancelled", resp.StatusCode)
	}
	select {
	case <-aborted:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream stream outlived the client's")
	}
}

// TestH2OutlierEjectionAndMetrics: an h2c target answering 503 is ejected after
// consecutive_failures, its 503s are retried on the healthy one, and the upstream metrics count
// the HTTP/2 attempts as they do HTTP/1.1 ones.
func TestH2OutlierEjectionAndMetrics(t *testing.T) {
	bad := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }), nil, 0)
	good := startH2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "good") }), nil, 0)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{bad.Addr, good.Addr}, "",
		"  outlier_detection {\n    consecutive_failures = 2\n  }\n  retry {\n    attempts = 1\n    budget_percent = 100\n  }\n"))
	for i := range 6 {
		if code, body, _ := get(t, gatewaytest.Client(), gw.URL+"/x"); code != 200 || string(body) != "good" {
			t.Fatalf("request %d: %d %q, want the 503 retried on the good target", i, code, body)
		}
	}
	ts := targetStatus(t, gw, bad.Addr)
	if ts.EjectedUntil == nil || ts.Failures != 2 {
		t.Errorf("bad target: ejected until %v after %d failures, want ejected after 2", ts.EjectedUntil, ts.Failures)
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == bad.Addr && m.GetCounter() != nil {
					got[f.GetName()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if got["sluice_upstream_requests_total"] != 2 || got["sluice_upstream_failures_total"] != 2 || got["sluice_upstream_ejections_total"] != 1 {
		t.Errorf("metrics of the bad target %v, want 2 requests, 2 failures, 1 ejection", got)
	}
}

// TestH2StreamOutlivesTimeout: once a response body streams to the client, the upstream timeout
// measures the time without progress: a stream of events longer than timeouts.request goes
// through whole, and one that stalls for longer than it is cut.
func TestH2StreamOutlivesTimeout(t *testing.T) {
	events := func(n int, every, stallAfter time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			begin := time.Now()
			for i := range n {
				_, _ = fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				if stallAfter > 0 && time.Since(begin) > stallAfter {
					<-r.Context().Done() // stalls until the gateway gives up
					return
				}
				time.Sleep(every)
			}
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/long", events(12, 50*time.Millisecond, 0)) // 600 ms in all
	mux.Handle("/stall", events(100, 50*time.Millisecond, 100*time.Millisecond))
	up := startH2Upstream(t, mux, nil, 0)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{up.Addr}, "", "  timeouts {\n    request = \"300ms\"\n  }\n"))
	resp, body := rawRequest(t, gw.Addr, "GET /long HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || strings.Count(string(body), "data:") != 12 {
		t.Fatalf("%d %q: want all 12 events of a stream that outlives timeouts.request", resp.StatusCode, body)
	}
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "GET /stall HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	begin := time.Now()
	raw, _ := io.ReadAll(conn) // ends when the gateway cuts the stalled stream
	if d := time.Since(begin); d > 5*time.Second || !strings.Contains(string(raw), "data: 0") || strings.Contains(string(raw), "\r\n0\r\n\r\n") {
		t.Errorf("after %v: %q; want the first events, then the stream cut (no chunked end)", d, raw)
	}
}
