package telemetry

import (
	"net"
	"strconv"
	"testing"
)

// TestSplitHostPort: splitHostPort answers as net.SplitHostPort does (host, and the port as a
// number, 0 when absent or not a number), its fast path included.
func TestSplitHostPort(t *testing.T) {
	for _, hp := range []string{"", "example.com", "example.com:8080", "127.0.0.1:18410", "h:", ":80", "h:x", "h:99999999999999999999",
		"[::1]:443", "[::1]", "::1", "a:b:c", "[a]b:1", "a]:1", "a[:1", "[fe80::1%eth0]:80", "h:+1", "h:-1"} {
		host, port := splitHostPort(hp)
		wantHost, wantPort := hp, 0
		if h, p, err := net.SplitHostPort(hp); err == nil {
			wantHost = h
			wantPort, _ = strconv.Atoi(p)
		}
		if host != wantHost || port != wantPort {
			t.Errorf("splitHostPort(%q) = %q, %d; net.SplitHostPort gives %q, %d", hp, host, port, wantHost, wantPort)
		}
	}
}
