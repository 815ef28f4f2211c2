package admin_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

const readyzConfig = `
admin {
  %s
}
upstream "app" {
  target {
    address = %q
  }
  target {
    address = %q
  }
  %s
}
pipeline "p" {
  balancer {
    upstream = upstream.app
  }
}
`

// TestReadyzAfterConnectFailures (issue 25, item 18): an upstream whose every target refuses
// connections makes /readyz answer 503 once requests have found so, without a health_check
// block (passive ejection alone stops at max_ejection_percent, so one of two dead targets stayed
// "available" and today's main answered 200). A target that accepts a connection again makes it
// ready again; readyz_upstreams = "ignore" keeps it 200 throughout.
func TestReadyzAfterConnectFailures(t *testing.T) {
	// Passive ejection: consecutive_failures = 1 ejects one of the two targets at once, and the
	// default max_ejection_percent (50) keeps the other in.
	const outlier = `outlier_detection {
    consecutive_failures = 1
    base_ejection_time   = "100ms"
  }`
	for _, tc := range []struct{ name, mode, upstream string }{
		{"default", "", ""},
		{"any_available", `readyz_upstreams = "any_available"`, ""},
		{"outlier_detection", "", outlier},
		{"ignore", `readyz_upstreams = "ignore"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			a, b := deadAddr(t), deadAddr(t)
			gw := gatewaytest.Start(t, fmt.Sprintf(readyzConfig, mode, a, b, tc.upstream))
			base := startAdmin(t, gw, nil)
			ignore := strings.Contains(mode, "ignore")

			if code, body := fetch(t, "GET", base+"/readyz", ""); code != 200 {
				t.Fatalf("/readyz before any request: %d %s", code, body)
			}
			client := gatewaytest.Client()
			for i := range 10 {
				status, _, err := client.Get(nil, gw.URL+"/x")
				if err != nil {
					t.Fatal(err)
				}
				if status != 502 && status != 503 {
					t.Fatalf("request %d to dead targets: %d", i, status)
				}
			}
			code, body := fetch(t, "GET", base+"/readyz", "")
			switch {
			case ignore && code != 200:
				t.Errorf("readyz_upstreams = ignore: /readyz %d %s, want 200", code, body)
			case !ignore && (code != 503 || !strings.Contains(body, `"app"`)):
				t.Errorf("every target refusing connections: /readyz %d %s, want 503 naming app", code, body)
			}
			if _, body := fetch(t, "GET", base+"/upstreams", ""); !strings.Contains(body, `"connect_failing": true`) {
				t.Errorf("/upstreams does not show the failing connections:\n%s", body)
			}

			// Target a comes back: once a request reaches it, the upstream is ready again.
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Skipf("port of target a taken meanwhile: %v", err)
			}
			srv := &fasthttp.Server{Handler: func(fc *fasthttp.RequestCtx) { fc.SetBodyString("ok") }}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Shutdown() })
			for deadline := time.Now().Add(20 * time.Second); ; {
				status, _, err := client.Get(nil, gw.URL+"/x")
				if err != nil {
					t.Fatal(err)
				}
				if status == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no request reached the target that came back (last status %d)", status)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code, body := fetch(t, "GET", base+"/readyz", ""); code != 200 {
				t.Errorf("a target answers again: /readyz %d %s, want 200", code, body)
			}
		})
	}
}
