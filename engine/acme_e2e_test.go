package engine_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestACMEBeforeACertificate runs a gateway whose CA is unreachable: it starts and serves at
// once (obtaining runs in the background), a handshake for the managed name fails cleanly
// while no certificate exists, a validation handshake (acme-tls/1) for a name without a
// challenge fails too, a request under /.well-known/acme-challenge/ that answers no challenge
// of ours is routed like any other, and the storage directory is created private.
func TestACMEBeforeACertificate(t *testing.T) {
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) {
		fc.SetBodyString("upstream saw " + string(fc.Path()))
	})
	storage := filepath.Join(t.TempDir(), "acme")
	g := gatewaytest.Start(t, fmt.Sprintf(`
listener "http" {
  address = "127.0.0.2:0" # another host than the TLS listener's: two ":0" on one host count as the same address
}
listener "https" {
  address = "127.0.0.1:0"
  tls {
    acme {
      ca_url      = "https://127.0.0.1:1/directory"
      challenges  = ["tls-alpn-01"] # http-01 wants its listener on the TLS listener's host
      storage_dir = %q
    }
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "app" {
  match { hosts = ["app.sluice.test"] }
  balancer { upstream = upstream.u }
}
`, storage, up))

	st, err := os.Stat(storage)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("storage directory mode %v, want 0700", st.Mode().Perm())
	}

	for _, protos := range [][]string{{"http/1.1"}, {"acme-tls/1"}} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", g.Addrs["https"],
			&tls.Config{ServerName: "app.sluice.test", InsecureSkipVerify: true, NextProtos: protos})
		if err == nil {
			conn.Close()
			t.Errorf("ALPN %v: the handshake succeeded without a certificate", protos)
		} else if !strings.Contains(err.Error(), "remote error: tls:") {
			t.Errorf("ALPN %v: want a TLS alert, got %v", protos, err)
		}
	}

	c, err := net.DialTimeout("tcp", g.Addrs["http"], 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /.well-known/acme-challenge/abcDEF123 HTTP/1.1\r\nHost: app.sluice.test\r\n\r\n")
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 || string(resp.Body()) != "upstream saw /.well-known/acme-challenge/abcDEF123" {
		t.Errorf("a path under acme-challenge that is no challenge of ours: %d %q", resp.StatusCode(), resp.Body())
	}
}
