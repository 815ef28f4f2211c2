package engine_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// TestMalformedRequestLogHidesCredentials: fasthttp's warning about a request it cannot parse
// quotes the offending line; the gateway's log keeps the header's name and hides the rest.
func TestMalformedRequestLogHidesCredentials(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	addr := strings.TrimPrefix(gw.URL, "http://")
	requests := []string{
		"GET / HTTP/1.1\r\nHost: x\r\nAuthorization Bearer s3cret-one\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key\x00: s3cret-two\r\n\r\n",
		"GET /p\x01?access_token=s3cret-three HTTP/1.1\r\nHost: x\r\n\r\n",
		// fasthttp quotes only the value of a header with a bad byte: nothing names the header.
		"GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key: s3cret-four\x00\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nCookie: sid=s3cret-five\x01\r\n\r\n",
	}
	for _, req := range requests {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte(req))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 400") {
			t.Errorf("%q: answered %q, want 400", req, b)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(gw.Logs(), "component=http") < len(requests) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	logs := gw.Logs()
	if strings.Count(logs, "component=http") < len(requests) {
		t.Fatalf("expected a warning per malformed request:\n%s", logs)
	}
	if strings.Contains(logs, "s3cret") {
		t.Errorf("the log shows a credential a client sent:\n%s", logs)
	}
	for _, want := range []string{`Authorization [redacted]`, `X-Api-Key\\x00 [redacted]`, `invalid header value \"[redacted]\"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
}
