package balancer_test

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/nginxtest"
)

// TestH2NginxUpstream: nginx (Debian's nginx-light has the http_v2 module) as a TLS upstream
// with `listen … ssl http2`: protocol h2 and auto reach it over HTTP/2, verified with ca_file
// and server_name.
func TestH2NginxUpstream(t *testing.T) {
	ca := newPKI(t, "nginx CA")
	certPEM, keyPEM, _ := ca.issue(t, upstreamHost, false)
	addr := nginxtest.Start(t, `
  server {
    listen LISTEN ssl http2;
    ssl_certificate DIR/cert.pem;
    ssl_certificate_key DIR/key.pem;
    location / {
      return 200 "nginx $server_protocol $ssl_server_name $request_uri\n";
    }
  }`, map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM})

	target := "    tls = true\n    ca_file = \"ca.pem\"\n    server_name = \"" + upstreamHost + "\""
	for _, protocol := range []string{"h2", "auto"} {
		t.Run(protocol, func(t *testing.T) {
			gw := gatewaytest.StartWith(t, h2Config("", protocol, []string{addr}, target, ""),
				gatewaytest.Options{Files: map[string][]byte{"ca.pem": ca.PEM}})
			for range 3 {
				resp, body := rawRequest(t, gw.Addr, "GET /p%41th?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
				if want := "nginx HTTP/2.0 " + upstreamHost + " /p%41th?q=1\n"; resp.StatusCode != 200 || string(body) != want {
					t.Fatalf("%d %q, want 200 %q\n%s", resp.StatusCode, body, want, gw.Logs())
				}
			}
			if strings.Contains(gw.Logs(), "level=WARN") {
				t.Errorf("warnings:\n%s", gw.Logs())
			}
		})
	}
}
