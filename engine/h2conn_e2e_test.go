package engine_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
)

// h2Servers are the HTTP/2 servers h2_server selects; the tests below run on each.
var h2Servers = []string{engine.H2ServerSluice, engine.H2ServerNetHTTP}

// TestH2ServerSetting: h2_server defaults to the engine's own server and takes only the two names.
func TestH2ServerSetting(t *testing.T) {
	var s engine.ServerConfig
	s.SetDefaults()
	if s.H2Server != engine.H2ServerSluice {
		t.Errorf("default h2_server %q, want %q", s.H2Server, engine.H2ServerSluice)
	}
	for _, v := range h2Servers {
		s.H2Server = v
		if err := s.Validate(); err != nil {
			t.Errorf("h2_server = %q: %v", v, err)
		}
	}
	s.H2Server = "nghttpd"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "h2_server") {
		t.Errorf("h2_server = \"nghttpd\" validated: %v", err)
	}
}

// TestH2ExpectContinue: a request that waits for 100 Continue gets it once the gateway reads its
// body, then its answer.
func TestH2ExpectContinue(t *testing.T) {
	for _, server := range h2Servers {
		t.Run(server, func(t *testing.T) {
			gw, up := attackGateway(t, 0, `h2_server = "`+server+`"`)
			c := dialH2(t, gw.Addr)
			block := c.block("/upload", ":method", "POST", "content-length", "5", "expect", "100-continue")
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			if status := c.status(t, 1); status != 100 {
				t.Fatalf("first answer %d, want 100", status)
			}
			if err := c.fr.WriteData(1, true, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			if status := c.status(t, 1); status != 200 {
				t.Fatalf("answer %d, want 200", status)
			}
			if up.requests.Load() != 1 {
				t.Errorf("upstream got %d requests, want 1", up.requests.Load())
			}
		})
	}
}

// TestH2FlowControlViolation: a client that sends past the stream window the gateway advertised
// (while nothing reads the body yet) has its stream reset or its connection failed
// with FLOW_CONTROL_ERROR; the gateway does not buffer what it did not allow.
func TestH2FlowControlViolation(t *testing.T) {
	for _, server := range h2Servers {
		t.Run(server, func(t *testing.T) {
			addr := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
			// The fault filter holds the request before anything reads its body.
			gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
  h2_server = %q
  max_body_bytes = "64MiB"
}
upstream "u" {
  target { address = %q }
}
pipeline "all" {
  filter "fault" { delay = "5s" }
  balancer { upstream = upstream.u }
}
`, server, addr))
			c := dialH2(t, gw.Addr)
			// No content-length: the body streams, and only the advertised window may be sent
			// ahead of the gateway's reads. 16 MiB is past any window either server advertises.
			block := c.block("/up", ":method", "POST")
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			chunk := make([]byte, 16<<10)
			go func() {
				_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				for sent := 0; sent < 16<<20; sent += len(chunk) {
					if c.fr.WriteData(1, false, chunk) != nil {
						return
					}
				}
			}()
			_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				f, err := c.fr.ReadFrame()
				if err != nil {
					t.Fatalf("no FLOW_CONTROL_ERROR before: %v", err)
				}
				if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 1 {
					if r.ErrCode != http2.ErrCodeFlowControl {
						t.Fatalf("stream reset with %v, want FLOW_CONTROL_ERROR", r.ErrCode)
					}
					return
				}
				if g, ok := f.(*http2.GoAwayFrame); ok {
					if g.ErrCode != http2.ErrCodeFlowControl {
						t.Fatalf("GOAWAY %v, want FLOW_CONTROL_ERROR", g.ErrCode)
					}
					return
				}
			}
		})
	}
}

// TestH2StalledClientReset: a streamed response whose client gives no flow-control credit for
// write_timeout is reset (RST_STREAM INTERNAL_ERROR, as net/http's server does), not ended with
// END_STREAM as if the client had the whole body, and the gateway logs why, naming the request.
func TestH2StalledClientReset(t *testing.T) {
	for _, server := range h2Servers {
		t.Run(server, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			// A live response (server-sent events) longer than the client's window, then
			// nothing more until the test ends: the gateway is left waiting for credit.
			up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "data: %s\n\n", strings.Repeat("x", 4096))
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			gw := gatewaytest.Start(t, streamConfig(`
  protocols     = ["http1", "h2c"]
  h2_server     = "`+server+`"
  write_timeout = "200ms"
  request_id    = "X-Request-Id"`, up, ""))
			// The client lets the gateway send 1 KiB on the stream and never gives more.
			c := dialH2(t, gw.Addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1024})
			got := c.getUntilReset(t, cutPath, "authorization", "Bearer "+cutSecret)
			if got > 1024 {
				t.Errorf("%d bytes sent on a 1 KiB window", got)
			}
			if server == engine.H2ServerSluice {
				// net/http's server resets the stream itself, before a write fails.
				assertCutLine(t, gw.Logs(), "a write to the client passed its deadline", up, true)
			}
		})
	}
}

// TestH2StalledClientResetHeld: a response held whole (not streamed) whose client gives no
// flow-control credit for write_timeout is reset too, and the log line names its request.
func TestH2StalledClientResetHeld(t *testing.T) {
	up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body := strings.Repeat("x", 16<<10)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		fmt.Fprint(w, body)
	})
	gw := gatewaytest.Start(t, streamConfig(`
  protocols     = ["http1", "h2c"]
  write_timeout = "200ms"
  request_id    = "X-Request-Id"`, up, ""))
	c := dialH2(t, gw.Addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1024})
	if got := c.getUntilReset(t, cutPath, "authorization", "Bearer "+cutSecret); got > 1024 {
		t.Errorf("%d bytes sent on a 1 KiB window", got)
	}
	assertCutLine(t, gw.Logs(), "a write to the client passed its deadline", up, true)
}

// TestH2UpstreamCutReset: a streamed response whose upstream fails mid-body (its connection
// closed before the last chunk) is reset (RST_STREAM INTERNAL_ERROR), and the gateway logs why,
// naming the request.
func TestH2UpstreamCutReset(t *testing.T) {
	for _, server := range h2Servers {
		t.Run(server, func(t *testing.T) {
			up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "data: 1\n\n")
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // the connection closes without the last chunk
			})
			gw := gatewaytest.Start(t, streamConfig(`
  protocols = ["http1", "h2c"]
  h2_server = "`+server+`"
  request_id = "X-Request-Id"`, up, ""))
			c := dialH2(t, gw.Addr)
			c.getUntilReset(t, cutPath, "authorization", "Bearer "+cutSecret)
			assertCutLine(t, gw.Logs(), "the upstream's body failed", up, server == engine.H2ServerSluice)
		})
	}
}

// The request of the cut tests: the query and the Authorization field carry secrets no log line
// may show.
const (
	cutSecret = "s3cr3t-t0ken"
	cutPath   = "/events?token=" + cutSecret
)

var requestIDField = regexp.MustCompile(` request_id=[0-9a-f]{32}( |$)`)

// assertCutLine checks the gateway's log line about a cut response (msg): it names the request
// of cutPath on pipeline "p", its upstream "u" and target up, the client, the HTTP/2 stream
// (stream: on the engine's own server) and the request id, and shows no secret.
func assertCutLine(t *testing.T, logs, msg, up string, stream bool) {
	t.Helper()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, msg) {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatalf("no log line says %q:\n%s", msg, logs)
	}
	want := []string{"level=WARN", " pipeline=p ", " method=GET ", " path=/events ", " client=127.0.0.1 ", " upstream=u ", " target=" + up + " ", " attempts=1 "}
	if stream {
		want = append(want, " stream=1 ")
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("the log line lacks %q: %s", strings.TrimSpace(w), line)
		}
	}
	if !requestIDField.MatchString(line) {
		t.Errorf("the log line has no request_id: %s", line)
	}
	if strings.Contains(logs, cutSecret) || strings.Contains(logs, "Bearer") {
		t.Errorf("the log shows a secret of the request:\n%s", logs)
	}
}

// TestH1UpstreamCut: over HTTP/1.1, a streamed response whose upstream fails mid-body ends with the
// connection closed before the body's end, and the gateway logs why, naming the request.
func TestH1UpstreamCut(t *testing.T) {
	up := streamUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	gw := gatewaytest.Start(t, streamConfig(`
  request_id = "X-Request-Id"`, up, ""))
	req, err := http.NewRequest("GET", "http://"+gw.Addr+cutPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cutSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the cut response read whole (%q): want an error", body)
	}
	assertCutLine(t, gw.Logs(), "the upstream's body failed", up, false)
	if !strings.Contains(gw.Logs(), " proto=HTTP/1.1 ") {
		t.Errorf("the log line does not say HTTP/1.1:\n%s", gw.Logs())
	}
}

// getUntilReset sends a GET on stream 1 and reads its response until the gateway resets it with
// INTERNAL_ERROR; it fails the test if the stream ends (END_STREAM) or the connection does
// first, and returns the response body's bytes that arrived.
func (c *h2Raw) getUntilReset(t *testing.T, path string, fields ...string) int {
	t.Helper()
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(path, fields...), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := 0
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes: %v, want RST_STREAM", got, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			got += len(f.Data())
			if f.StreamEnded() {
				t.Fatalf("the stream ended (END_STREAM) after %d bytes, as if whole: want RST_STREAM", got)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				t.Fatalf("the stream ended with a header section after %d bytes: want RST_STREAM", got)
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v after %d bytes, want RST_STREAM", f.ErrCode, got)
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeInternal {
				t.Errorf("RST_STREAM %v, want INTERNAL_ERROR", f.ErrCode)
			}
			return got
		}
	}
}
