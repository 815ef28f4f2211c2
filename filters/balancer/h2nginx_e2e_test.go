package balancer_test

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

// TestH2NginxUpstream: nginx (Debian's nginx-light has the http_v2 module) as a TLS upstream
// with `listen … ssl http2`: protocol h2 and auto reach it over HTTP/2, verified with ca_file
// and server_name.
func TestH2NginxUpstream(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx is not installed (Debian: apt-get install nginx-light; .ci/run installs it)")
		}
		bin = "/usr/sbin/nginx"
	}
	ca := newPKI(t, "nginx CA")
	certPEM, keyPEM, _ := ca.issue(t, upstreamHost, false)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf(`
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s ssl http2;
    ssl_certificate %[1]s/cert.pem;
    ssl_certificate_key %[1]s/key.pem;
    location / {
      return 200 "nginx $server_protocol $ssl_server_name $request_uri\n";
    }
  }
}
`, dir, addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	if !waitUntil(10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("nginx is not listening on %s:\n%s", addr, log)
	}

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
