package engine_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/nginxtest"
)

// startNginx runs nginx on a random loopback port with the given server blocks (LISTEN stands for
// the address) and returns its address; it is stopped when the test ends.
func startNginx(t *testing.T, servers string) string {
	t.Helper()
	return nginxtest.Start(t, servers, nil)
}

// nginxVhosts has a protected location (/admin/) and a protected virtual host (internal.example)
// beside an open default one. nginx decodes %2F and merges slashes before matching a location,
// and drops a trailing dot from Host before picking a virtual host: what a gateway in front of it
// must agree with.
const nginxVhosts = `
  server {
    listen LISTEN default_server;
    server_name open.example;
    location /admin/ { return 200 "admin"; }
    location / { return 200 "open"; }
  }
  server {
    listen LISTEN;
    server_name internal.example;
    location / { return 200 "internal"; }
  }
`

// rawGet sends one raw GET and returns the status and body.
func rawGet(t *testing.T, addr, target, host string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", target, host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestNginxBehindSluice puts a real nginx behind the gateway: an open pipeline in front of
// nginx must not become a way into nginx's /admin/ location or internal.example virtual host,
// which the gateway's /admin/ and hosts = ["internal.example"] pipelines protect with a token.
func TestNginxBehindSluice(t *testing.T) {
	ngx := startNginx(t, nginxVhosts)
	// nginx itself serves the protected content for each of these (so the checks below mean
	// something): %2F decoded, slashes merged, the trailing dot dropped.
	for _, c := range []struct{ target, host, body string }{
		{"/admin%2Fsecret", "open.example", "admin"},
		{"/%2Fadmin/secret", "open.example", "admin"},
		{"/x/..%2Fadmin/secret", "open.example", "admin"},
		{"/", "internal.example.", "internal"},
		{"/", "internal.example.:80", "internal"},
	} {
		if code, body := rawGet(t, ngx, c.target, c.host); code != 200 || body != c.body {
			t.Fatalf("nginx direct %s (Host %s) = %d %q, want 200 %q", c.target, c.host, code, body, c.body)
		}
	}
	for _, mode := range []string{"reject", "redirect", "unescape"} {
		t.Run(mode, func(t *testing.T) {
			gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  escaped_slashes = %q
}
upstream "nginx" {
  target { address = %q }
}
pipeline "admin" {
  match { path_prefix = "/admin/" }
  filter "jwt" { hmac_secret = "0123456789abcdef0123456789abcdef" }
  balancer { upstream = upstream.nginx }
}
pipeline "internal" {
  match { hosts = ["internal.example"] }
  filter "jwt" { hmac_secret = "0123456789abcdef0123456789abcdef" }
  balancer { upstream = upstream.nginx }
}
pipeline "open" {
  balancer { upstream = upstream.nginx }
}
`, mode, ngx))
			if code, body := rawGet(t, gw.Addr, "/public", "open.example"); code != 200 || body != "open" {
				t.Fatalf("open path through the gateway = %d %q, want 200 \"open\"", code, body)
			}
			for _, c := range []struct{ target, host string }{
				{"/admin/secret", "open.example"},
				{"/admin%2Fsecret", "open.example"},
				{"/%2Fadmin/secret", "open.example"},
				{"/x/..%2Fadmin/secret", "open.example"},
				{"/admin%5Csecret", "open.example"},
				{"/", "internal.example"},
				{"/", "internal.example."},
				{"/", "internal.example.:80"},
				{"/", "Internal.Example"},
				{"/", "x@internal.example"},
			} {
				code, body := rawGet(t, gw.Addr, c.target, c.host)
				if body == "admin" || body == "internal" {
					t.Errorf("%s with Host %s reached nginx's protected content through the gateway: %d %q", c.target, c.host, code, body)
				}
				if code == 200 {
					t.Errorf("%s with Host %s: 200 %q, want a refusal", c.target, c.host, body)
				}
			}
		})
	}
}
