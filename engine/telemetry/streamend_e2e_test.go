package telemetry_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
)

// TestStreamedResponseFinishedAtItsEnd: over HTTP/1.1, a response streamed to the client (larger
// than max_response_bytes) has its server span and otel_log record finished when its body has
// been written: the record counts the body's bytes, and a body the upstream cuts short makes the
// span an error (upstream_cut) and the record say why.
func TestStreamedResponseFinishedAtItsEnd(t *testing.T) {
	const size = 64 << 10
	// An upstream that sends /full whole and only half of /cut before closing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					n := size
					if req.URL.Path == "/v1/cut" {
						n = size / 2
					}
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", size, strings.Repeat("a", n))
					if n != size {
						return
					}
				}
			}()
		}
	}()
	rcv, err := otlpreceiver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Close() })
	logFile := filepath.Join(t.TempDir(), "access.log")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
telemetry {
  traces {
    exporter     = "otlp"
    endpoint     = %q
    sample_ratio = 1
  }
}
server { max_response_bytes = "1KiB" }
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "otel_log" { output = %q }
  balancer { upstream = upstream.u }
}
`, rcv.Endpoint, ln.Addr().String(), logFile))

	resp, err := http.Get(gw.URL + "/v1/full")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != size {
		t.Fatalf("full body: %d bytes, %v", len(b), err)
	}
	resp, err = http.Get(gw.URL + "/v1/cut")
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("cut body read whole (%d bytes)", len(b))
	}

	if err := gw.Telemetry.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans, err := rcv.WaitSpans(10*time.Second, func(s []otlpreceiver.Span) bool { return len(servers(s)) >= 2 })
	if err != nil {
		t.Fatalf("server spans: %v", err)
	}
	for _, s := range servers(spans) {
		switch s.Attributes["url.path"] {
		case "/v1/full":
			if s.StatusCode == "Error" {
				t.Errorf("full: span is an error: %v", s.Attributes)
			}
		case "/v1/cut":
			if s.StatusCode != "Error" || s.Attributes["error.type"] != "upstream_cut" {
				t.Errorf("cut: span status %s, error.type %v", s.StatusCode, s.Attributes["error.type"])
			}
		}
	}
	var log string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if bb, _ := os.ReadFile(logFile); strings.Count(string(bb), "\n") >= 2 {
			log = string(bb)
			break
		}
	}
	if !strings.Contains(log, fmt.Sprintf(`"path":"/v1/full","status":200,"bytes":%d,`, size)) {
		t.Errorf("full: no record with the streamed body's size:\n%s", log)
	}
	if !strings.Contains(log, `"path":"/v1/cut","status":200,`) || !strings.Contains(log, `"error":"response body cut: upstream failed`) {
		t.Errorf("cut: no record saying the body was cut:\n%s", log)
	}
}
