package engine_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// startNginx runs nginx (package nginx-light) on a random loopback port with the given server
// block directives, until the test ends, and returns its address.
func startNginx(t *testing.T, server string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx is not installed (apt-get install nginx-light)")
		}
		bin = "/usr/sbin/nginx"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nginx binds it next; another process taking it meanwhile fails the start below
	dir := t.TempDir()
	conf := fmt.Sprintf(`
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s;
    %[3]s
  }
}
`, dir, addr, server)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-g", "daemon off;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s %s", stderr.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start listening on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNginxUpstreamSeesGatewayIdentity puts nginx behind the gateway, configured as CGI-style
// upstreams are (underscores_in_headers on: X_User_Id is $http_x_user_id, like X-User-Id), and
// checks that what nginx acts on is what the gateway set: the identity header of a filter, the
// client's Host, and X-Forwarded-For, whatever the client names in Connection or spells with
// underscores.
func TestNginxUpstreamSeesGatewayIdentity(t *testing.T) {
	ngx := startNginx(t, `
    underscores_in_headers on;
    location / {
      default_type text/plain;
      return 200 "user=[$http_x_user_id] host=[$host] xff=[$http_x_forwarded_for] real=[$http_x_real_ip] method=[$http_x_http_method_override]\n";
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
