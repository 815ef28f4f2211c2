package engine_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// counterSum sums the counters of family name whose labels include want.
func counterSum(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelsInclude(m.GetLabel(), want) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func labelsInclude(got []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, l := range got {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// rawStatus sends raw on a new connection and returns the status line's code.
func rawStatus(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("status line %q", line)
	}
	return f[1]
}

// TestRefusalsCountedAndLogged sends requests the gateway refuses before routing, as raw bytes,
// and checks that each one is counted in sluice_requests_total{pipeline="(none)"} under its
// status and logged with its reason.
func TestRefusalsCountedAndLogged(t *testing.T) {
	addr := gatewaytest.Upstream(t, (&recordingUpstream{}).handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  read_timeout     = "2s"
  max_header_bytes = "2KiB"
  max_uri_bytes    = "512B"
  max_body_bytes   = "1KiB"
  max_conns_per_ip = 2
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, addr))
	const host = "Host: x\r\n"
	tests := []struct {
		name, raw, status, method, reason string
	}{
		{"smuggling CL and TE", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400", "POST", "smuggling"},
		{"header too large", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 4096) + "\r\n\r\n", "431", "OTHER", "larger than max_header_bytes"},
		{"request-target too long", "GET /" + strings.Repeat("a", 1000) + " HTTP/1.1\r\n" + host + "\r\n", "414", "GET", "max_uri_bytes"},
		{"HTTP/2 request line", "GET / HTTP/2.0\r\n" + host + "\r\n", "505", "GET", "unsupported HTTP version"},
		{"body too large", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4096\r\n\r\n" + strings.Repeat("b", 4096), "413", "POST", "max_body_bytes"},
		{"bad header name", "GET / HTTP/1.1\r\n" + host + "Bad(Name: y\r\n\r\n", "400", "OTHER", "could not be parsed"},
		{"unparsable", "GET /a b HTTP/1.1\r\n" + host + "\r\n", "400", "OTHER", "could not be parsed"},
		{"dot segment with parameters", "GET /open/..;/admin HTTP/1.1\r\n" + host + "\r\n", "400", "GET", "dot segment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			class := tc.status[:1] + "xx"
			labels := map[string]string{"pipeline": "(none)", "code_class": class, "source": "gateway", "method": tc.method}
			before := counterSum(t, "sluice_requests_total", labels)
			logsBefore := strings.Count(gw.Logs(), tc.reason)
			if got := rawStatus(t, gw.Addr, tc.raw); got != tc.status {
				t.Fatalf("status %s, want %s", got, tc.status)
			}
			// The count is made before the answer is written.
			if d := counterSum(t, "sluice_requests_total", labels) - before; d != 1 {
				t.Errorf("sluice_requests_total%v grew by %v, want 1", labels, d)
			}
			if strings.Count(gw.Logs(), tc.reason) <= logsBefore {
				t.Errorf("no log line with %q; logs:\n%s", tc.reason, gw.Logs())
			}
		})
	}

	t.Run("connection limit", func(t *testing.T) {
		labels := map[string]string{"pipeline": "(none)", "code": "429"}
		before := counterSum(t, "sluice_requests_total", labels)
		var held []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", gw.Addr)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		// The held connections are counted once the gateway accepted them: retry until the
		// third is refused.
		deadline := time.Now().Add(5 * time.Second)
		for {
			if got := rawStatus(t, gw.Addr, "GET / HTTP/1.1\r\n"+host+"\r\n"); got == "429" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a third connection from one address was never refused")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := counterSum(t, "sluice_requests_total", labels) - before; d != 1 {
			t.Errorf("429 refusals counted %v, want 1", d)
		}
	})
}
