package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Raw is a raw HTTP/2 client connection: frames written and read one by one, for the tests
// that send what a well-behaved client never would.
type h2Raw struct {
	conn net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

// dialH2 opens an h2c connection and exchanges the preface and SETTINGS (the client's, settings).
func dialH2(t *testing.T, addr string, settings ...http2.Setting) *h2Raw {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &h2Raw{conn: conn}
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.hbuf)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			break
		}
	}
	if err := c.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return c
}

// block encodes a request's header block: GET path unless fields say otherwise.
func (c *h2Raw) block(path string, fields ...string) []byte {
	c.hbuf.Reset()
	method := "GET"
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == ":method" {
			method = fields[i+1]
		}
	}
	for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", "localhost"}, {":path", path}} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] != ":method" {
			_ = c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
	}
	return bytes.Clone(c.hbuf.Bytes())
}

// get sends a GET on stream id and returns the response status (0: the stream was reset).
func (c *h2Raw) get(t *testing.T, id uint32, path string) int {
	t.Helper()
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(path), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	return c.status(t, id)
}

// status reads frames until stream id's response headers (or reset) arrive.
func (c *h2Raw) status(t *testing.T, id uint32) int {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for stream %d: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				n, _ := strconv.Atoi(f.PseudoValue("status"))
				return n
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return 0
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY (%v) waiting for stream %d", f.ErrCode, id)
		}
	}
}

// drainUntilClosed reads frames until the connection ends, returning the GOAWAY error code seen
// (if any) and whether it ended within d.
func (c *h2Raw) drainUntilClosed(d time.Duration) (goaway http2.ErrCode, sawGoAway, closed bool) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			return goaway, sawGoAway, !(errors.As(err, &ne) && ne.Timeout())
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaway, sawGoAway = g.ErrCode, true
		}
	}
}

// countingUpstream answers after delay, counting the requests it gets and the most it handled at
// once.
type countingUpstream struct {
	requests, inflight, peak atomic.Int64
}

func (u *countingUpstream) handle(delay time.Duration) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		u.requests.Add(1)
		n := u.inflight.Add(1)
		for {
			p := u.peak.Load()
			if n <= p || u.peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(delay)
		u.inflight.Add(-1)
		c.SetBodyString("ok")
	}
}

// attackGateway starts an h2c gateway in front of a counting upstream that answers after delay.
func attackGateway(t *testing.T, delay time.Duration, serverAttrs string) (*gatewaytest.Gateway, *countingUpstream) {
	t.Helper()
	up := &countingUpstream{}
	addr := gatewaytest.Upstream(t, up.handle(delay))
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
  %s
}
upstream "u" {
  target { address = %q }
}
pipeline "all" {
  balancer { upstream = upstream.u }
}
`, serverAttrs, addr))
	return gw, up
}

// healthy checks that the gateway serves a fresh HTTP/2 client.
func healthy(t *testing.T, gw *gatewaytest.Gateway) {
	t.Helper()
	c := dialH2(t, gw.Addr)
	if status := c.get(t, 1, "/health"); status != 200 {
		t.Fatalf("gateway unhealthy after the attack: %d", status)
	}
}

// TestH2RapidReset (CVE-2023-44487): a client opening streams and resetting each at once gets
// few upstream requests out of the gateway, never more at once than h2_max_concurrent_streams.
func TestH2RapidReset(t *testing.T) {
	gw, up := attackGateway(t, 50*time.Millisecond, `h2_max_concurrent_streams = 20`)
	c := dialH2(t, gw.Addr)
	const n = 2000
	var sent int
	for i := 0; i < n; i++ {
		id := uint32(2*i + 1)
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block("/r"), EndStream: true, EndHeaders: true}); err != nil {
			break // the server hung up: also a bounded outcome
		}
		if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	c.drainUntilClosed(2 * time.Second)
	// Requests already sent upstream finish (the upstream takes 50 ms each).
	time.Sleep(200 * time.Millisecond)
	t.Logf("%d streams opened and reset: %d upstream requests, at most %d at once", sent, up.requests.Load(), up.peak.Load())
	// A stream reset before its handler runs sends nothing upstream; one reset while its
	// request is on the way ends that exchange (the upstream here sleeps on regardless, so its
	// own count of requests at once includes exchanges the gateway has already dropped). Go
	// runs at most h2_max_concurrent_streams handlers per connection at once. Measured here: 1
	// of 2000 streams reaches the upstream; ~400 under the race detector.
	if got := up.requests.Load(); got > n/2 {
		t.Errorf("%d reset streams caused %d upstream requests, want at most %d", sent, got, n/2)
	}
	if p := up.peak.Load(); p > n/4 {
		t.Errorf("%d upstream requests at once", p)
	}
	healthy(t, gw)
}

// TestH2TooManyStreams: streams beyond h2_max_concurrent_streams are refused, and the upstream
// never gets more at once.
func TestH2TooManyStreams(t *testing.T) {
	gw, up := attackGateway(t, 300*time.Millisecond, `h2_max_concurrent_streams = 10`)
	c := dialH2(t, gw.Addr)
	const n = 30
	for i := 0; i < n; i++ {
		id := uint32(2*i + 1)
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block("/s"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	ok, refused := 0, 0
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for ok+refused < n {
		f, err := c.fr.ReadFrame()
		if err != nil {
			break
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			ok++
		case *http2.RSTStreamFrame:
			refused++
		case *http2.GoAwayFrame:
			t.Logf("GOAWAY %v", f.ErrCode)
		}
	}
	t.Logf("%d streams: %d answered, %d refused; upstream peak %d", n, ok, refused, up.peak.Load())
	if ok > 10 || ok == 0 {
		t.Errorf("%d streams answered, want 1..10 (h2_max_concurrent_streams)", ok)
	}
	if p := up.peak.Load(); p > 10 {
		t.Errorf("upstream handled %d at once, over h2_max_concurrent_streams", p)
	}
	healthy(t, gw)
}

// TestH2ContinuationFlood (CVE-2024-27316 and kin): a header block that never ends, sent as
// endless CONTINUATION frames, is cut off once it passes max_header_bytes; nothing reaches the
// upstream.
func TestH2ContinuationFlood(t *testing.T) {
	gw, up := attackGateway(t, 0, `max_header_bytes = "16KiB"`)
	c := dialH2(t, gw.Addr)
	first := c.block("/c")
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: false}); err != nil {
		t.Fatal(err)
	}
	// Each CONTINUATION adds a literal field of ~1 KiB; 64 MiB would be sent without a limit.
	c.hbuf.Reset()
	_ = c.enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("f", 1000)})
	frag := bytes.Clone(c.hbuf.Bytes())
	done := make(chan int64, 1)
	go func() {
		var sent int64
		_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for sent < 64<<20 {
			if err := c.fr.WriteContinuation(1, false, frag); err != nil {
				break
			}
			sent += int64(len(frag))
		}
		done <- sent
	}()
	_, _, closed := c.drainUntilClosed(10 * time.Second)
	sent := <-done
	t.Logf("connection closed after %d bytes of CONTINUATION", sent)
	if !closed || sent >= 64<<20 {
		t.Fatalf("the gateway took %d bytes of an endless header block (closed: %v)", sent, closed)
	}
	if up.requests.Load() != 0 {
		t.Errorf("upstream got %d requests", up.requests.Load())
	}
	healthy(t, gw)
}

// TestH2HPACKBomb: a small header block that expands, through dynamic-table references, far
// past max_header_bytes is refused without reaching the upstream.
func TestH2HPACKBomb(t *testing.T) {
	gw, up := attackGateway(t, 0, `max_header_bytes = "16KiB"`)
	c := dialH2(t, gw.Addr)
	// Put one 4000-byte field in the dynamic table (index 62), then refer to it 4000 times:
	// ~4 KiB on the wire, ~16 MiB decoded.
	c.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", "/bomb"}} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = c.enc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
	block := bytes.Clone(c.hbuf.Bytes())
	for i := 0; i < 4000; i++ {
		block = append(block, 0x80|62) // indexed field 62: the newest dynamic-table entry
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	outcome := ""
	for outcome == "" {
		f, err := c.fr.ReadFrame()
		if err != nil {
			outcome = "closed: " + err.Error()
			break
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			outcome = "status " + f.PseudoValue("status")
			if f.PseudoValue("status") != "431" {
				t.Errorf("HPACK bomb answered %s, want 431", f.PseudoValue("status"))
			}
		case *http2.RSTStreamFrame:
			outcome = "RST_STREAM " + f.ErrCode.String()
		case *http2.GoAwayFrame:
			outcome = "GOAWAY " + f.ErrCode.String()
		}
	}
	t.Logf("HPACK bomb: %s", outcome)
	if up.requests.Load() != 0 {
		t.Errorf("upstream got %d requests", up.requests.Load())
	}
	healthy(t, gw)
}

// TestH2ControlFrameFloods: SETTINGS and PING floods (CVE-2019-9515, CVE-2019-9512) from a
// client that never reads the acknowledgements cost the gateway no memory to speak of and no
// service to other clients. Go's server acknowledges a run of SETTINGS once, so that flood is
// just read at the pace it comes; PING acknowledgements queue, and past 10,000 queued control
// frames the connection is closed (when the server reads faster than it can write: whether it
// does depends on the machine, so the test checks the bound, memory, not the close).
func TestH2ControlFrameFloods(t *testing.T) {
	gw, _ := attackGateway(t, 0, ``)
	for _, kind := range []string{"SETTINGS", "PING"} {
		t.Run(kind, func(t *testing.T) {
			c := dialH2(t, gw.Addr)
			// A small receive buffer: the acknowledgements back up after a few KiB rather
			// than after the megabytes loopback buffers hold.
			_ = c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			before := heapInUse()
			type result struct {
				n   int
				err error
			}
			done := make(chan result, 1)
			go func() {
				n := 0
				_ = c.conn.SetWriteDeadline(time.Now().Add(3 * time.Second))
				var err error
				for {
					if kind == "PING" {
						err = c.fr.WritePing(false, [8]byte{1})
					} else {
						err = c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
					}
					if err != nil {
						break
					}
					n++
				}
				done <- result{n, err}
			}()
			healthy(t, gw) // during the flood
			r := <-done
			grew := heapInUse() - before
			t.Logf("%s flood: %d frames, ended by %v; heap grew %d KiB", kind, r.n, r.err, grew>>10)
			if grew > 32<<20 {
				t.Errorf("the gateway's heap grew by %d MiB under a %s flood", grew>>20, kind)
			}
			healthy(t, gw)
		})
	}
}

// heapInUse is the process's live heap after a collection (the gateway runs in the test's
// process).
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
