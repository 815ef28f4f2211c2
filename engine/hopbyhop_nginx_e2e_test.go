package engine_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// TestNginxUpstreamSeesGatewayIdentity puts nginx behind the gateway, configured as CGI-style
// upstreams are (underscores_in_headers on: X_User_Id is $http_x_user_id, like X-User-Id), and
// checks that what nginx acts on is what the gateway set: the identity header of a filter, the
// client's Host, and X-Forwarded-For, whatever the client names in Connection or spells with
// underscores.
func TestNginxUpstreamSeesGatewayIdentity(t *testing.T) {
	ngx := startNginx(t, `
  server {
    listen LISTEN;
    underscores_in_headers on;
    location / {
      default_type text/plain;
      return 200 "user=[$http_x_user_id] host=[$host] xff=[$http_x_forwarded_for] real=[$http_x_real_ip] method=[$http_x_http_method_override]\n";
    }
  }`)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "nginx" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    request_set = { "X-User-Id" = "alice" }
  }
  balancer { upstream = upstream.nginx }
}
`, ngx))
	for _, tt := range []struct{ name, hdrs string }{
		{"Connection names the filter's header", "X_User_Id: admin\r\nConnection: X-User-Id\r\n"},
		{"underscore spellings", "X_User_Id: admin\r\nX_Forwarded_For: 10.0.0.1\r\nX_Real_IP: 10.0.0.1\r\n"},
		{"Connection names Host", "Connection: Host\r\n"},
		{"spoofable headers", "X-Real-IP: 10.0.0.1\r\nX-HTTP-Method-Override: DELETE\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", gw.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.example\r\n"+tt.hdrs+"Connection: close\r\n\r\n")
			b, _ := io.ReadAll(conn)
			resp := string(b)
			want := "user=[alice] host=[app.example] xff=[127.0.0.1] real=[] method=[]"
			if !strings.HasPrefix(resp, "HTTP/1.1 200") || !strings.Contains(resp, want) {
				t.Errorf("nginx answered\n%s\nwant a 200 with %q", resp, want)
			}
		})
	}
}
