package filters_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestRewriteRedirectRespondFaultE2E runs the rewrite, redirect, respond and fault kinds through a
// real gateway loaded from HCL, over HTTP/1.1 and h2c.
func TestRewriteRedirectRespondFaultE2E(t *testing.T) {
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		// The upstream echoes the request-target and Host it received.
		fmt.Fprintf(ctx, "%s %s", ctx.Request.Header.RequestURI(), ctx.Request.Header.Host())
	})
	src := fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "app" {
  target {
    address = %q
  }
}
pipeline "legacy" {
  match {
    path_prefix = "/v1/"
  }
  strip_prefix = "/v1"
  filter "rewrite" {
    path_regex   = "^/v1/public/(.*)"
    path_replace = "/api/$1"
    host         = "api.internal"
    add_query    = { "source" = "v1" }
    remove_query = ["debug"]
  }
  balancer {
    upstream = upstream.app
  }
}
pipeline "stripped" {
  match {
    path_prefix = "/s/"
  }
  strip_prefix = "/s"
  filter "rewrite" {
    add_query = { "q" = "1" }
  }
  balancer {
    upstream = upstream.app
  }
}
pipeline "old" {
  match {
    hosts = ["old.example"]
  }
  filter "redirect" {
    https = true
    host  = "new.example"
  }
  balancer {
    upstream = upstream.app
  }
}
pipeline "secure" {
  match {
    hosts = ["plain.example"]
  }
  filter "redirect" {
    https = true
  }
  balancer {
    upstream = upstream.app
  }
}
pipeline "robots" {
  match {
    path_prefix = "/robots.txt"
  }
  filter "respond" {
    body_file = "robots.txt"
    headers   = { "Cache-Control" = "max-age=60" }
  }
  balancer {
    upstream = upstream.app
  }
}
pipeline "maintenance" {
  match {
    path_prefix = "/down/"
  }
  filter "respond" {
    status       = 503
    body         = "<h1>back soon</h1>"
    content_type = "text/html"
    headers      = { "Retry-After" = "120" }
  }
  balancer {
    upstream = upstream.app
  }
}
pipeline "faulty" {
  match {
    path_prefix = "/fault/"
  }
  filter "fault" {
    delay        = "300ms"
    abort_status = 418
    header       = "X-Fault"
  }
  balancer {
    upstream = upstream.app
  }
}
`, up)
	abortsBefore := counterValue(t, "sluice_fault_aborts_total", "pipeline", "faulty")
	gw := gatewaytest.StartWith(t, src, gatewaytest.Options{Files: map[string][]byte{"robots.txt": []byte("User-agent: *\nDisallow: /\n")}})

	clients := map[string]*http.Client{}
	for name, h2c := range map[string]bool{"http1": false, "h2c": true} {
		var p http.Protocols
		p.SetHTTP1(!h2c)
		p.SetUnencryptedHTTP2(h2c)
		clients[name] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			do := func(host, path string, hdr ...string) (*http.Response, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", gw.URL+path, nil)
				if host != "" {
					req.Host = host
				}
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if want := map[string]int{"http1": 1, "h2c": 2}[name]; resp.ProtoMajor != want {
					t.Errorf("spoke HTTP/%d, want %d", resp.ProtoMajor, want)
				}
				return resp, string(b)
			}

			// rewrite: the upstream gets the rewritten path (strip_prefix not applied on top),
			// query and Host.
			resp, body := do("gw.example", "/v1/public/users/7?debug=1&a=2&source=evil")
			if resp.StatusCode != 200 || body != "/api/users/7?a=2&source=v1 api.internal" {
				t.Errorf("rewrite: %d %q", resp.StatusCode, body)
			}
			// A rewrite that only changes the query leaves strip_prefix to do its job.
			if resp, body := do("gw.example", "/s/x?a=1"); resp.StatusCode != 200 || body != "/x?a=1&q=1 gw.example" {
				t.Errorf("query-only rewrite with strip_prefix: %d %q", resp.StatusCode, body)
			}

			// redirect
			resp, _ = do("old.example", "/a/b?x=1")
			if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://new.example/a/b?x=1" {
				t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			resp, _ = do("plain.example", "//evil.example/x")
			if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || loc != "https://plain.example/evil.example/x" {
				t.Errorf("https redirect of //evil.example/x: %d %q", resp.StatusCode, loc)
			}

			// respond
			resp, body = do("gw.example", "/robots.txt")
			if resp.StatusCode != 200 || body != "User-agent: *\nDisallow: /\n" || resp.Header.Get("Cache-Control") != "max-age=60" ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("robots.txt: %d %q %v", resp.StatusCode, body, resp.Header)
			}
			head, _ := http.NewRequest("HEAD", gw.URL+"/robots.txt", nil)
			if resp, err := client.Do(head); err != nil {
				t.Error(err)
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || len(b) != 0 {
					t.Errorf("HEAD /robots.txt: %d with %d body bytes", resp.StatusCode, len(b))
				}
			}
			resp, body = do("gw.example", "/down/x")
			if resp.StatusCode != 503 || body != "<h1>back soon</h1>" || resp.Header.Get("Retry-After") != "120" {
				t.Errorf("maintenance: %d %q", resp.StatusCode, body)
			}

			// fault: only with the header; delayed, then aborted.
			if resp, body := do("gw.example", "/fault/x"); resp.StatusCode != 200 || body != "/fault/x gw.example" {
				t.Errorf("fault without header: %d %q", resp.StatusCode, body)
			}
			start := time.Now()
			if resp, _ := do("gw.example", "/fault/x", "X-Fault", "1"); resp.StatusCode != 418 {
				t.Errorf("fault with header: %d, want 418", resp.StatusCode)
			}
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Errorf("fault answered after %v, want the 300ms delay first", d)
			}
		})
	}
	if strings.Contains(gw.Logs(), "418") {
		t.Errorf("an intended abort was logged:\n%s", gw.Logs())
	}
	// The aborts are counted instead: one per protocol.
	if n := counterValue(t, "sluice_fault_aborts_total", "pipeline", "faulty") - abortsBefore; n != 2 {
		t.Errorf("sluice_fault_aborts_total{pipeline=faulty} = %v, want 2", n)
	}
}

// TestFaultDelayEndsWhenClientLeavesE2E: an HTTP/2 client that resets its stream during a fault
// delay ends the wait at once (the request is not forwarded, and the reason is logged).
func TestFaultDelayEndsWhenClientLeavesE2E(t *testing.T) {
	var upstreamHits atomic.Int32
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) { upstreamHits.Add(1) })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "app" {
  target {
    address = %q
  }
}
pipeline "slow" {
  match {
    path_prefix = "/"
  }
  filter "fault" {
    delay = "50s"
  }
  balancer {
    upstream = upstream.app
  }
}
`, up))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &p}}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/x", nil)
	start := time.Now()
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d before the delay ended", resp.StatusCode)
	}
	// The gateway's wait ends soon after the reset: its log says so well before the 50s.
	for !strings.Contains(gw.Logs(), "client went away during the injected delay") {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the fault delay did not end when the client left; logs:\n%s", gw.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := upstreamHits.Load(); n != 0 {
		t.Errorf("the upstream got %d requests from a client that had left", n)
	}
}

// counterValue sums the counter name's series whose label has value.
func counterValue(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
