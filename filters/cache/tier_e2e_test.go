package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/ratelimit/redistest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

func tierConfig(pipeline, target, redisAddr string) string {
	return fmt.Sprintf(`
redis "shared" {
  address = %q
  timeout = "200ms"
}
upstream "u" {
  target {
    address = %q
  }
}
pipeline %q {
  filter "cache" {
    max_bytes        = "8MiB"
    status_header    = true
    store            = redis.shared
    store_key_prefix = "fleet:"
  }
  balancer {
    upstream = upstream.u
  }
}
`, redisAddr, target, pipeline)
}

// TestSharedTierServesSecondInstance: what one gateway fetched, a second one (its own in-process
// cache) answers from Redis without calling the upstream; with Redis gone both keep serving.
func TestSharedTierServesSecondInstance(t *testing.T) {
	rs := redistest.Start(t)
	var calls atomic.Int64
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		calls.Add(1)
		c.Response.Header.Set("Cache-Control", "max-age=60")
		c.Response.Header.Set("ETag", `"v1"`)
		c.SetContentType("application/json")
		c.SetBodyString(`{"path":"` + string(c.Path()) + `"}`)
	})
	// Two pipeline names: the in-process stores are kept per pipeline (shared.go), and each
	// instance must have its own for the test to mean anything.
	a := gatewaytest.Start(t, tierConfig("a", up, rs.Addr))
	b := gatewaytest.Start(t, tierConfig("b", up, rs.Addr))

	// Behind one load balancer every instance sees the same Host.
	get := func(t *testing.T, url string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "api.example.com"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, body := get(t, a.URL+"/obj")
	if resp.Header.Get("X-Cache") != "MISS" || calls.Load() != 1 {
		t.Fatalf("first request: X-Cache %q, %d upstream calls", resp.Header.Get("X-Cache"), calls.Load())
	}
	// The write to Redis is in the background: wait for it.
	rc := rs.Client()
	defer rc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		keys, _ := rc.Keys(t.Context(), "fleet:*").Result()
		if len(keys) == 1 {
			ttl, _ := rc.TTL(t.Context(), keys[0]).Result()
			if ttl <= 0 || ttl > 60*time.Second {
				t.Errorf("the shared entry expires in %v, want within the response's 60s", ttl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the entry did not reach Redis: keys %v", keys)
		}
		time.Sleep(10 * time.Millisecond)
	}

	for i, want := range []string{"HIT", "HIT"} { // from Redis, then from b's own memory
		resp, got := get(t, b.URL+"/obj")
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != want || string(got) != string(body) || resp.Header.Get("ETag") != `"v1"` {
			t.Errorf("second instance, request %d: %d X-Cache %q ETag %q body %q", i+1, resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("ETag"), got)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("%d upstream calls, want 1: the second instance fetched again", calls.Load())
	}

	// Redis gone: a miss goes to the upstream, no error.
	rs.Kill()
	resp, got := get(t, b.URL+"/other")
	if resp.StatusCode != 200 || !strings.Contains(string(got), "/other") || calls.Load() != 2 {
		t.Errorf("with Redis down: %d %q, %d upstream calls", resp.StatusCode, got, calls.Load())
	}
}
