package rewrite_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestRewriteConcurrentE2E: through a real gateway loaded from HCL, many requests at once over
// HTTP/1.1 and h2c (streams of one connection share a server goroutine but not a Ctx), each with
// a path and query of its own length. Each upstream request must carry exactly its own rewritten
// path, query and Host: a buffer shared between requests (the target's memory is the Ctx's, kept
// from one request to the next) would mix them. Routing and the access rule decide on the
// client's path: /v1/... is served by pipeline "v1", never by "api", whose paths the rewrite
// produces. Run with -race.
func TestRewriteConcurrentE2E(t *testing.T) {
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintf(ctx, "%s %s", ctx.Request.Header.RequestURI(), ctx.Request.Header.Host())
	})
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "app" {
  target {
    address = %q
  }
}
pipeline "v1" {
  match {
    path_prefix = "/v1/"
  }
  filter "rewrite" {
    path_regex   = "^/v1/(.*)$"
    path_replace = "/api/$1"
    host         = "api.internal"
    add_query    = { "source" = "v1" }
    remove_query = ["debug"]
  }
  balancer {
    upstream = upstream.app
  }
}
pipeline "api" {
  match {
    path_prefix = "/api/"
  }
  filter "respond" {
    status = 403
    body   = "not from outside"
  }
  balancer {
    upstream = upstream.app
  }
}
`, up))

	for _, h2c := range []bool{false, true} {
		var p http.Protocols
		p.SetHTTP1(!h2c)
		p.SetUnencryptedHTTP2(h2c)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p, MaxConnsPerHost: 8}}
		name := map[bool]string{false: "http1", true: "h2c"}[h2c]
		t.Run(name, func(t *testing.T) {
			const workers, each = 16, 40
			var wg sync.WaitGroup
			errs := make(chan string, workers*each)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						// Lengths differ from request to request and worker to worker.
						seg := strings.Repeat(string(rune('a'+w)), 1+(w*7+i*13)%90)
						path := fmt.Sprintf("/v1/%s/%d", seg, i)
						query := fmt.Sprintf("debug=1&k=%s&n=%d", seg[:1+i%len(seg)], i)
						want := fmt.Sprintf("/api/%s/%d?k=%s&n=%d&source=v1 api.internal", seg, i, seg[:1+i%len(seg)], i)
						resp, err := client.Get(gw.URL + path + "?" + query)
						if err != nil {
							errs <- err.Error()
							return
						}
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || string(b) != want {
							errs <- fmt.Sprintf("%s?%s: %d %q, want %q", path, query, resp.StatusCode, b, want)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			n := 0
			for e := range errs {
				if n++; n <= 5 {
					t.Error(e)
				}
			}
			if n > 5 {
				t.Errorf("... %d failures in all", n)
			}
		})
		// The rewritten path is the upstream's only: the client asking for it is routed on it.
		resp, err := client.Get(gw.URL + "/api/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || string(b) != "not from outside" {
			t.Errorf("%s /api/x: %d %q, want the api pipeline's 403", name, resp.StatusCode, b)
		}
	}
}
