package engine_test

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// Streamed bodies through a real gateway on loopback (stream.go, filters/balancer/stream.go).

// bigBody is the size of the large upload and download: 1 GiB, less where the race detector
// or -short makes the copy too slow to be worth it.
func bigBody() int64 {
	if raceOn || testing.Short() {
		return 64 << 20
	}
	return 1 << 30
}

// heapBound is how much the heap in use may grow while a large body streams through the
// gateway (client and upstream included, all in this process): a body held whole would be
// sixteen times as much.
const heapBound = 64 << 20

// pattern is a reader of n bytes of a repeating pattern, generated as it is read.
type pattern struct{ left, off int64 }

var patternBlock = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

func (p *pattern) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	from := p.off % int64(len(patternBlock))
	n := copy(b, patternBlock[from:min(int64(len(patternBlock)), from+p.left)])
	p.left -= int64(n)
	p.off += int64(n)
	return n, nil
}

// patternCRC is the CRC-32 of n bytes of pattern.
func patternCRC(n int64) uint32 {
	h := crc32.NewIEEE()
	_, _ = io.Copy(h, &pattern{left: n})
	return h.Sum32()
}

// heapWatch samples the heap in use until stopped and returns the largest growth over the
// starting value.
func heapWatch(t *testing.T) (stop func() uint64) {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-tk.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// streamUpstream starts a net/http upstream (which streams bodies both ways) on loopback.
func streamUpstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func streamConfig(server, up, upstreamAttrs string) string {
	return fmt.Sprintf(`
server {%s
}
upstream "u" {
  target { address = %q }%s
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, server, up, upstreamAttrs)
}

// TestStreamUploadLarge: a 1 GiB upload, with a Content-Length and chunked, reaches the upstream
// whole while the gateway's heap stays bounded.
func TestStreamUploadLarge(t *testing.T) {
	size := bigBody()
	want := patternCRC(size)
	type got struct {
		n   int64
		crc uint32
		te  string
		err error
	}
	seen := make(chan got, 1)
	up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := crc32.NewIEEE()
		n, err := io.Copy(h, r.Body)
		seen <- got{n, h.Sum32(), strings.Join(r.TransferEncoding, ","), err}
		fmt.Fprintf(w, "%d", n)
	})
	gw := gatewaytest.Start(t, streamConfig(`
  max_body_bytes = "2GiB"`, up, ""))
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			stop := heapWatch(t)
			start := time.Now()
			req, _ := http.NewRequest("POST", gw.URL+"/up", &pattern{left: size})
			if !chunked {
				req.ContentLength = size
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				stop()
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			grew := stop()
			if resp.StatusCode != 200 || string(body) != fmt.Sprint(size) {
				t.Fatalf("status %d, body %q; want 200 and %d", resp.StatusCode, body, size)
			}
			g := <-seen
			if g.err != nil || g.n != size || g.crc != want {
				t.Fatalf("upstream read %d bytes (crc %08x, err %v), want %d (crc %08x)", g.n, g.crc, g.err, size, want)
			}
			if wantTE := map[bool]string{true: "chunked", false: ""}[chunked]; g.te != wantTE {
				t.Errorf("upstream framing %q, want %q", g.te, wantTE)
			}
			t.Logf("%d MiB in %v, heap grew by at most %.1f MiB", size>>20, time.Since(start).Round(time.Millisecond), float64(grew)/(1<<20))
			if grew > heapBound {
				t.Errorf("heap in use grew by %d MiB while streaming, want under %d MiB", grew>>20, heapBound>>20)
			}
		})
	}
}

// TestStreamDownloadLarge: a 1 GiB download, with a Content-Length and chunked, reaches the
// client whole while the gateway's heap stays bounded.
func TestStreamDownloadLarge(t *testing.T) {
	size := bigBody()
	want := patternCRC(size)
	up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cl") == "1" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
		}
		_, _ = io.Copy(w, &pattern{left: size})
	})
	// A response of unknown length is held up to max_response_bytes (for the response phases)
	// before it is found to stream: that much is on top of the bound.
	gw := gatewaytest.Start(t, streamConfig(`
  max_response_bytes = "8MiB"`, up, ""))
	for _, cl := range []string{"1", "0"} {
		t.Run("content-length="+cl, func(t *testing.T) {
			stop := heapWatch(t)
			start := time.Now()
			resp, err := http.Get(gw.URL + "/down?cl=" + cl)
			if err != nil {
				stop()
				t.Fatal(err)
			}
			h := crc32.NewIEEE()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			grew := stop()
			if resp.StatusCode != 200 || err != nil || n != size || h.Sum32() != want {
				t.Fatalf("status %d, read %d bytes (crc %08x, err %v), want %d (crc %08x)", resp.StatusCode, n, h.Sum32(), err, size, want)
			}
			t.Logf("%d MiB in %v, heap grew by at most %.1f MiB", size>>20, time.Since(start).Round(time.Millisecond), float64(grew)/(1<<20))
			if grew > heapBound {
				t.Errorf("heap in use grew by %d MiB while streaming, want under %d MiB", grew>>20, heapBound>>20)
			}
		})
	}
}

// The event-stream tests (TestServerSentEvents, TestH2ServerSentEvents) send sseEvents events
// sseEvery apart through a gateway whose write_timeout and upstream request timeout are
// sseTimeout: the stream outlives both, which measure idleness for it. The gateway, the upstream
// and the client are one process here, and a loaded machine can stall the whole of it: a stall
// longer than the timeout less the gap between events lets the deadline of the gateway's read
// waiting for the next event pass before the upstream, stalled too, sends it. That read fails
// (i/o timeout) and the stream is cut as the upstream's failure (over HTTP/2, RST_STREAM
// INTERNAL_ERROR). 100 ms apart under 400 ms timeouts left 300 ms, which a loaded 2-core machine
// stalled for once; now the margin is about a second.
const (
	sseTimeout = time.Second
	sseEvery   = 40 * time.Millisecond
	sseEvents  = 30 // 29 gaps of sseEvery: longer than sseTimeout
	// sseHeld is how long the upstream waits for the client to have read what it sent before it
	// reports that the gateway held it back (under the clients' 10 s timeout).
	sseHeld = 5 * time.Second
)

// sseTimeouts are the server and upstream attributes of the event-stream tests.
var sseTimeouts = [2]string{fmt.Sprintf(`
  write_timeout = "%v"`, sseTimeout), fmt.Sprintf(`
  timeouts {
    request = "%v"
  }`, sseTimeout)}

// eventStream is an upstream's event stream in lockstep with the client that reads it through the
// gateway: the response head, then each event, goes only once the client has read what went
// before. A gateway that held any of it back (until more arrived, or the end) leaves the
// upstream waiting, and held says what it waited for: streamed or not is not a matter of timing.
type eventStream struct {
	read chan struct{} // the client read the head or an event
	held chan string   // what the upstream waited sseHeld for
}

func newEventStream() *eventStream {
	return &eventStream{read: make(chan struct{}, sseEvents+1), held: make(chan string, 1)}
}

// serve is the upstream's handler.
func (es *eventStream) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f := w.(http.Flusher)
	f.Flush()
	wait := func(what string) bool {
		t := time.NewTimer(sseHeld)
		defer t.Stop()
		select {
		case <-es.read:
			return true
		case <-r.Context().Done():
		case <-t.C:
			es.held <- what
		}
		return false
	}
	if !wait("the response head") {
		return
	}
	for i := range sseEvents {
		fmt.Fprintf(w, "data: %d %d\n\n", i, time.Now().UnixNano())
		f.Flush()
		if !wait(fmt.Sprintf("event %d", i)) {
			return
		}
		time.Sleep(sseEvery)
	}
}

// check reads the event stream from resp, whose head the client has just read, and checks that
// every event arrived, in order, each while the upstream waited for it. On failure gw's log says
// what cut the stream.
func (es *eventStream) check(t *testing.T, gw *gatewaytest.Gateway, resp *http.Response, start time.Time) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("the gateway's log:\n%s", gw.Logs())
		}
	}()
	es.read <- struct{}{} // the head
	br := bufio.NewReader(resp.Body)
	got := 0
	var worst, gap time.Duration // an event's time through the gateway; the longest between two
	last := time.Now()
	var rerr error
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
		var i int
		var sent int64
		if _, err := fmt.Sscanf(line, "data: %d %d", &i, &sent); err != nil {
			continue
		}
		if i != got {
			t.Fatalf("event %d, want %d", i, got)
		}
		got++
		now := time.Now()
		worst = max(worst, now.Sub(time.Unix(0, sent)))
		gap, last = max(gap, now.Sub(last)), now
		es.read <- struct{}{}
	}
	select {
	case what := <-es.held:
		t.Errorf("%s was held back: the upstream waited %v for the client to read it", what, sseHeld)
	default:
	}
	if rerr != nil {
		t.Fatalf("after %d events (at most %v apart): %v", got, gap.Round(time.Millisecond), rerr)
	}
	if got != sseEvents {
		t.Fatalf("%d events, want %d", got, sseEvents)
	}
	took := time.Since(start)
	t.Logf("%d events over %v, at most %v apart; the slowest took %v through the gateway", got, took.Round(time.Millisecond), gap.Round(time.Millisecond), worst.Round(time.Millisecond))
	if took < sseTimeout {
		t.Errorf("the stream took %v: it should have outlived write_timeout and the request timeout (%v)", took, sseTimeout)
	}
}

// TestServerSentEvents: an event stream goes to the client event by event, and outlives the
// server's write_timeout and the upstream's request timeout, which measure idleness for it.
func TestServerSentEvents(t *testing.T) {
	es := newEventStream()
	up := streamUpstream(t, es.serve)
	gw := gatewaytest.Start(t, streamConfig(sseTimeouts[0], up, sseTimeouts[1]))
	start := time.Now()
	resp, err := http.Get(gw.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	es.check(t, gw, resp, start)
}

// bodyUpstream records how each request body it receives ends: its length and read error.
type bodyUpstream struct {
	addr string
	mu   sync.Mutex
	seen []string
	got  chan struct{}
}

func newBodyUpstream(t *testing.T) *bodyUpstream {
	u := &bodyUpstream{got: make(chan struct{}, 16)}
	u.addr = streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, fmt.Sprintf("%d %v", n, err))
		u.mu.Unlock()
		u.got <- struct{}{}
		if err == nil {
			fmt.Fprint(w, "complete")
		}
	})
	return u
}

// wait returns what the upstream saw of the next body, or "" if nothing came within d.
func (u *bodyUpstream) wait(d time.Duration) string {
	select {
	case <-u.got:
	case <-time.After(d):
		return ""
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[len(u.seen)-1]
}

// readStatus reads the status line the gateway answers on conn (and nothing else), or an
// error when the connection ends first.
func readStatus(conn net.Conn, d time.Duration) (string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestChunkedUploadCutAtMax: a chunked body is cut where it passes max_body_bytes: the client
// gets 413 and the upstream, which had started receiving it, never gets a complete body.
func TestChunkedUploadCutAtMax(t *testing.T) {
	up := newBodyUpstream(t)
	gw := gatewaytest.Start(t, streamConfig(`
  max_body_bytes = "64KiB"`, up.addr, ""))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 4096, strings.Repeat("x", 4096))
	go func() {
		_, _ = io.WriteString(conn, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		for i := 0; i < 256; i++ { // 1 MiB
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(conn, "0\r\n\r\n")
	}()
	status, err := readStatus(conn, 5*time.Second)
	if !strings.HasPrefix(status, "HTTP/1.1 413") {
		t.Fatalf("status line %q (%v), want 413", status, err)
	}
	seen := up.wait(5 * time.Second)
	if seen == "" || strings.HasSuffix(seen, "<nil>") {
		t.Fatalf("upstream saw %q: want a body that ended in an error (it was cut, not completed)", seen)
	}
	t.Logf("upstream saw %s", seen)
}

// TestContentLengthOverMax: a declared body over max_body_bytes is answered 413 before the
// pipeline, without reading it, and nothing reaches the upstream.
func TestContentLengthOverMax(t *testing.T) {
	up := newBodyUpstream(t)
	gw := gatewaytest.Start(t, streamConfig(`
  max_body_bytes = "1MiB"`, up.addr, ""))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"+strings.Repeat("x", 64<<10))
	status, err := readStatus(conn, 5*time.Second)
	if !strings.HasPrefix(status, "HTTP/1.1 413") {
		t.Fatalf("status line %q (%v), want 413", status, err)
	}
	if seen := up.wait(300 * time.Millisecond); seen != "" {
		t.Errorf("upstream received a request (%s), want none", seen)
	}
}

// TestSlowDripUpload: read_timeout measures the time between parts of a streamed body: a body
// that keeps coming runs past it, one that stalls is cut after it (408, connection closed), and
// the upstream never takes the cut body for a whole one.
func TestSlowDripUpload(t *testing.T) {
	up := newBodyUpstream(t)
	gw := gatewaytest.Start(t, streamConfig(`
  read_timeout = "300ms"`, up.addr, ""))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 1024, strings.Repeat("x", 1024))
	start := time.Now()
	_, _ = io.WriteString(conn, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+strings.Repeat(chunk, 16))
	// A part every 100 ms for a second: three times read_timeout in all.
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := io.WriteString(conn, chunk); err != nil {
			t.Fatalf("the gateway stopped reading a body that kept coming, after %v: %v", time.Since(start), err)
		}
	}
	stalled := time.Now()
	status, err := readStatus(conn, 5*time.Second)
	cut := time.Since(stalled)
	if !strings.HasPrefix(status, "HTTP/1.1 408") && !errors.Is(err, io.EOF) {
		t.Fatalf("after the stall: status line %q (%v), want 408 or the connection closed", status, err)
	}
	if cut > 2*time.Second {
		t.Errorf("the stalled body was cut after %v, want about read_timeout (300ms)", cut)
	}
	seen := up.wait(5 * time.Second)
	if seen == "" || strings.HasSuffix(seen, "<nil>") {
		t.Fatalf("upstream saw %q: want a body that ended in an error", seen)
	}
	t.Logf("cut %v after the stall (%q); upstream saw %s", cut.Round(time.Millisecond), status, seen)
}

// TestStreamedUploadExpectContinue: a client that waits for 100 Continue gets it, then its
// large body streams to the upstream.
func TestStreamedUploadExpectContinue(t *testing.T) {
	up := newBodyUpstream(t)
	gw := gatewaytest.Start(t, streamConfig("", up.addr, ""))
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 1 << 20
	_, _ = io.WriteString(conn, fmt.Sprintf("POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", size))
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line %q (%v), want 100 Continue", line, err)
	}
	go func() { _, _ = io.Copy(conn, &pattern{left: size}) }()
	for line != "\r\n" && err == nil {
		line, err = br.ReadString('\n')
	}
	line, err = br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("final status line %q (%v), want 200", line, err)
	}
	if seen := up.wait(5 * time.Second); seen != fmt.Sprintf("%d <nil>", size) {
		t.Errorf("upstream saw %q, want the whole body", seen)
	}
}

// TestLiveResponses: a chunked response the upstream marks X-Accel-Buffering: no, or any chunked
// response of an upstream with stream_responses = true, reaches the client chunk by chunk; an
// ordinary chunked response is held (for the response phases) until it ends.
func TestLiveResponses(t *testing.T) {
	const pause = 600 * time.Millisecond
	up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("accel") == "no" {
			w.Header().Set("X-Accel-Buffering", "no")
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "first\n")
		w.(http.Flusher).Flush()
		time.Sleep(pause)
		fmt.Fprint(w, "second\n")
	})
	held := gatewaytest.Start(t, streamConfig("", up, ""))
	live := gatewaytest.Start(t, streamConfig("", up, `
  stream_responses = true`))
	for _, tt := range []struct {
		name, url string
		live      bool
	}{
		{"ordinary", held.URL + "/", false},
		{"X-Accel-Buffering: no", held.URL + "/?accel=no", true},
		{"stream_responses", live.URL + "/", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp, err := http.Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if v := resp.Header.Get("X-Accel-Buffering"); v != "" {
				t.Errorf("X-Accel-Buffering %q reached the client", v)
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			first := time.Since(start)
			if line != "first\n" || err != nil {
				t.Fatalf("first line %q, %v", line, err)
			}
			if tt.live && first >= pause {
				t.Errorf("the first chunk arrived after %v, with the rest: held, want streamed", first)
			}
			if !tt.live && first < pause {
				t.Errorf("the first chunk arrived after %v, before the rest: want the response held", first)
			}
		})
	}
}

// TestStreamTimeout: stream_timeout bounds a streamed response that keeps moving: the client's
// stream ends in an error (no last chunk) once it has passed, short of the upstream's end.
func TestStreamTimeout(t *testing.T) {
	up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 40; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	gw := gatewaytest.Start(t, streamConfig(`
  stream_timeout = "500ms"`, up, ""))
	start := time.Now()
	resp, err := http.Get(gw.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	events := strings.Count(string(body), "data: ")
	if err == nil || events >= 40 {
		t.Fatalf("read %d events in %v, %v: want the stream cut short, with an error", events, took, err)
	}
	if took < 400*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("the stream was cut after %v, want about stream_timeout (500ms)", took)
	}
	t.Logf("cut after %v and %d events: %v", took.Round(time.Millisecond), events, err)
}

// TestStreamOutlivesReload: a live response under way when the configuration is reloaded goes
// on to its end on the old configuration's upstream connection.
func TestStreamOutlivesReload(t *testing.T) {
	const events = 10
	up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < events; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	cfg := streamConfig("", up, "")
	gw := gatewaytest.Start(t, cfg)
	resp, err := http.Get(gw.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "data: 0\n" || err != nil {
		t.Fatalf("first line %q, %v", line, err)
	}
	select {
	case <-gw.Reload(t, cfg): // the old configuration drained and was closed
	case <-time.After(5 * time.Second):
		t.Fatal("the reload did not finish")
	}
	rest, err := io.ReadAll(br)
	if err != nil || strings.Count(string(rest), "data: ") != events-1 {
		t.Fatalf("after the reload: %q, %v; want the other %d events", rest, err, events-1)
	}
}
