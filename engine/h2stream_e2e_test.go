package engine_test

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"golang.org/x/net/http2"
)

// Streamed bodies over HTTP/2 through a real gateway on loopback: an HTTP/2 client, the gateway,
// and an HTTP/1.1 or h2c upstream (h2serve.go, stream.go, filters/balancer/stream.go and
// h2transport.go). The helpers (pattern, heapWatch, bigBody, heapBound) are stream_e2e_test.go's.

// h2cUpstream serves h over h2c with prior knowledge (HTTP/2 only) on loopback.
func h2cUpstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// upstreamKinds are the upstreams an HTTP/2 client's stream goes to: HTTP/1.1 and h2c.
var upstreamKinds = []struct {
	name     string
	start    func(*testing.T, http.HandlerFunc) string
	protocol string // the upstream block's protocol attribute
}{
	{"upstream=http1", streamUpstream, ""},
	{"upstream=h2c", h2cUpstream, `
  protocol = "h2c"`},
}

// h2StreamGateway starts a gateway serving h2c (and HTTP/1.1) in front of addr.
func h2StreamGateway(t *testing.T, server, addr, upstreamAttrs string) *gatewaytest.Gateway {
	t.Helper()
	return gatewaytest.Start(t, streamConfig(`
  protocols = ["http1", "h2c"]`+server, addr, upstreamAttrs))
}

// TestH2StreamUploadLarge: a 1 GiB upload from an HTTP/2 client, with and without a length,
// reaches an HTTP/1.1 and an h2c upstream whole while the heap stays bounded.
func TestH2StreamUploadLarge(t *testing.T) {
	size := bigBody()
	want := patternCRC(size)
	for _, uk := range upstreamKinds {
		t.Run(uk.name, func(t *testing.T) {
			type got struct {
				n   int64
				crc uint32
				err error
			}
			seen := make(chan got, 1)
			up := uk.start(t, func(w http.ResponseWriter, r *http.Request) {
				h := crc32.NewIEEE()
				n, err := io.Copy(h, r.Body)
				seen <- got{n, h.Sum32(), err}
				fmt.Fprintf(w, "%d", n)
			})
			gw := h2StreamGateway(t, `
  max_body_bytes = "2GiB"`, up, uk.protocol)
			for _, known := range []bool{true, false} {
				t.Run(fmt.Sprintf("length=%v", known), func(t *testing.T) {
					stop := heapWatch(t)
					start := time.Now()
					req, _ := http.NewRequest("POST", gw.URL+"/up", &pattern{left: size})
					if known {
						req.ContentLength = size
					}
					resp, err := h2cClient().Do(req)
					if err != nil {
						stop()
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					grew := stop()
					if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != fmt.Sprint(size) {
						t.Fatalf("%s %d, body %q; want HTTP/2 200 and %d", resp.Proto, resp.StatusCode, body, size)
					}
					g := <-seen
					if g.err != nil || g.n != size || g.crc != want {
						t.Fatalf("upstream read %d bytes (crc %08x, err %v), want %d (crc %08x)", g.n, g.crc, g.err, size, want)
					}
					t.Logf("%d MiB in %v, heap grew by at most %.1f MiB", size>>20, time.Since(start).Round(time.Millisecond), float64(grew)/(1<<20))
					if grew > heapBound {
						t.Errorf("heap in use grew by %d MiB while streaming, want under %d MiB", grew>>20, heapBound>>20)
					}
				})
			}
		})
	}
}

// TestH2StreamDownloadLarge: a 1 GiB download to an HTTP/2 client, with and without a length,
// from an HTTP/1.1 and an h2c upstream, arrives whole while the heap stays bounded.
func TestH2StreamDownloadLarge(t *testing.T) {
	size := bigBody()
	want := patternCRC(size)
	for _, uk := range upstreamKinds {
		t.Run(uk.name, func(t *testing.T) {
			up := uk.start(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("cl") == "1" {
					w.Header().Set("Content-Length", fmt.Sprint(size))
				}
				_, _ = io.Copy(w, &pattern{left: size})
			})
			// A response of unknown length is held up to max_response_bytes before it is
			// found to stream: that much is on top of the bound.
			gw := h2StreamGateway(t, `
  max_response_bytes = "8MiB"`, up, uk.protocol)
			for _, cl := range []string{"1", "0"} {
				t.Run("content-length="+cl, func(t *testing.T) {
					stop := heapWatch(t)
					start := time.Now()
					resp, err := h2cClient().Get(gw.URL + "/down?cl=" + cl)
					if err != nil {
						stop()
						t.Fatal(err)
					}
					h := crc32.NewIEEE()
					n, err := io.Copy(h, resp.Body)
					resp.Body.Close()
					grew := stop()
					if resp.ProtoMajor != 2 || resp.StatusCode != 200 || err != nil || n != size || h.Sum32() != want {
						t.Fatalf("%s %d, read %d bytes (crc %08x, err %v), want HTTP/2 200 and %d (crc %08x)", resp.Proto, resp.StatusCode, n, h.Sum32(), err, size, want)
					}
					t.Logf("%d MiB in %v, heap grew by at most %.1f MiB", size>>20, time.Since(start).Round(time.Millisecond), float64(grew)/(1<<20))
					if grew > heapBound {
						t.Errorf("heap in use grew by %d MiB while streaming, want under %d MiB", grew>>20, heapBound>>20)
					}
				})
			}
		})
	}
}

// TestH2ServerSentEvents: an event stream reaches an HTTP/2 client event by event and outlives
// the server's write_timeout and the upstream's request timeout, from either kind of upstream
// (eventStream, stream_e2e_test.go).
func TestH2ServerSentEvents(t *testing.T) {
	for _, uk := range upstreamKinds {
		t.Run(uk.name, func(t *testing.T) {
			es := newEventStream()
			up := uk.start(t, es.serve)
			gw := h2StreamGateway(t, sseTimeouts[0], up, uk.protocol+sseTimeouts[1])
			start := time.Now()
			resp, err := h2cClient().Get(gw.URL + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%s %d, Content-Type %q", resp.Proto, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			es.check(t, gw, resp, start)
		})
	}
}

// TestH2SlowClientKeepsUpstream: a live response goes on while its HTTP/2 client takes longer
// than the upstream's request timeout for what one read brought (within write_timeout): that
// timeout measures the upstream's silence, from either kind of upstream, not the client's pace.
func TestH2SlowClientKeepsUpstream(t *testing.T) {
	const window = 1024
	for _, uk := range upstreamKinds {
		t.Run(uk.name, func(t *testing.T) {
			// Two windows' worth at once, then the end once the client has it all: the
			// gateway's last read waits for that end (up to the request timeout, which is
			// what a loaded machine may stall for).
			release := make(chan struct{})
			up := uk.start(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "data: %s\n\n", strings.Repeat("x", 2*window-8))
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			gw := h2StreamGateway(t, `
  write_timeout = "5s"`, up, uk.protocol+`
  timeouts {
    request = "1s"
  }`)
			c := dialH2(t, gw.Addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("/events"), EndStream: true, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := 0
			for {
				f, err := c.fr.ReadFrame()
				if err != nil {
					t.Fatalf("after %d bytes: %v", got, err)
				}
				switch f := f.(type) {
				case *http2.DataFrame:
					got += len(f.Data())
					if f.StreamEnded() {
						if got != 2*window {
							t.Errorf("%d bytes, want %d", got, 2*window)
						}
						return
					}
					if got == 2*window {
						close(release)
					}
					if n := len(f.Data()); n > 0 && got < 2*window {
						// The client takes its time (longer than the request timeout) before
						// it lets the rest come.
						time.Sleep(1300 * time.Millisecond)
						_ = c.fr.WriteWindowUpdate(1, uint32(n))
						_ = c.fr.WriteWindowUpdate(0, uint32(n))
					}
				case *http2.RSTStreamFrame:
					t.Fatalf("reset (%v) after %d bytes, the client slower than the request timeout:\n%s", f.ErrCode, got, gw.Logs())
				}
			}
		})
	}
}

// TestH2BidirectionalStream: an HTTP/2 client and an h2c upstream exchange 10,000 messages
// through the gateway on one stream, each answered before the next is sent: the request body
// flows to the upstream while the response flows back (full duplex), message by message.
func TestH2BidirectionalStream(t *testing.T) {
	const messages = 10000
	up := h2cUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		rc := http.NewResponseController(w)
		if err := rc.Flush(); err != nil {
			return
		}
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(w, "echo "+line); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	gw := h2StreamGateway(t, "", up, `
  protocol         = "h2c"
  stream_responses = true`)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", gw.URL+"/chat", pr)
	client := h2cClient()
	client.Timeout = 0 // the exchange's own deadline below
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		done <- result{resp, err}
	}()
	// The first message goes before the response head: the upstream answers once it is read.
	if _, err := io.WriteString(pw, "message 0\n"); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no response head within 10s")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	resp := res.resp
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("%s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	timer := time.AfterFunc(60*time.Second, func() { pw.CloseWithError(fmt.Errorf("timed out")); resp.Body.Close() })
	defer timer.Stop()
	start := time.Now()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < messages; i++ {
		if i > 0 {
			if _, err := fmt.Fprintf(pw, "message %d\n", i); err != nil {
				t.Fatalf("sending message %d: %v", i, err)
			}
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the answer to message %d: %v\n%s", i, err, gw.Logs())
		}
		if want := fmt.Sprintf("echo message %d\n", i); line != want {
			t.Fatalf("answer %q, want %q", line, want)
		}
	}
	_ = pw.Close()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 0 {
		t.Errorf("after the last message: %q, %v; want a clean end", rest, err)
	}
	took := time.Since(start)
	t.Logf("%d messages, each answered before the next, in %v (%v a round trip)", messages, took.Round(time.Millisecond), (took / messages).Round(time.Microsecond))
	if !strings.Contains(gw.Logs(), "streaming a live response") {
		t.Errorf("the gateway did not stream the response live")
	}
}

// TestH2UpstreamClientBodyOverMax: a streamed body that passes max_body_bytes on its way to an
// h2c upstream is the client's failure: 413 (engine.BodyErrorStatus), over HTTP/1.1 (chunked)
// and HTTP/2 (no length), and the target stays in service for the next request.
func TestH2UpstreamClientBodyOverMax(t *testing.T) {
	up := h2cUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	})
	gw := h2StreamGateway(t, `
  max_body_bytes = "1MiB"`, up, `
  protocol = "h2c"`)
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1 chunked", http.DefaultClient}, {"h2c without a length", h2cClient()}} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", gw.URL+"/big", &pattern{left: 3 << 20})
			req.ContentLength = -1
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 413 {
				t.Errorf("status %d, want 413", resp.StatusCode)
			}
			// The target was not charged with it: a body within the limit goes through.
			resp, err = c.client.Post(gw.URL+"/small", "text/plain", strings.NewReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "5" {
				t.Errorf("next request: %d %q, want 200 5", resp.StatusCode, b)
			}
		})
	}
}

// TestH2StalledUpload: an HTTP/2 client whose streamed body stalls past read_timeout gets 408
// (the client's failure, not the upstream's 502), from either kind of upstream.
func TestH2StalledUpload(t *testing.T) {
	for _, uk := range upstreamKinds {
		t.Run(uk.name, func(t *testing.T) {
			up := uk.start(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
			})
			gw := h2StreamGateway(t, `
  read_timeout = "500ms"`, up, uk.protocol)
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() {
				_, _ = pw.Write(make([]byte, 100<<10)) // then nothing more
			}()
			req, _ := http.NewRequest("POST", gw.URL+"/stall", pr)
			start := time.Now()
			resp, err := h2cClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 408 {
				t.Errorf("status %d after %v, want 408", resp.StatusCode, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}
