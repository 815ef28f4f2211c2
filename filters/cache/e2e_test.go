package cache_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-gateway/sluice/filters/cache"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// gatewayConfig is a pipeline with compress before cache, as the reference config has them.
func gatewayConfig(target string) string {
	return fmt.Sprintf(`
upstream "u" {
  target {
    address = %q
  }
}
pipeline "api" {
  match {
    path_prefix = "/"
  }
  filter "compress" {
    algorithms = ["zstd", "br", "gzip"]
    level      = { zstd = 3, br = 4, gzip = 5 }
    min_size   = "1KiB"
    types      = ["text/*", "application/json"]
  }
  filter "cache" {
    max_bytes     = "8MiB"
    default_ttl   = "30s"
    status_header = true
  }
  balancer {
    upstream = upstream.u
  }
}
`, target)
}

func catalogJSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < 16<<10; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"Item %d","price":%d.99}`, i, i, i%300)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// client talks to the gateway without transparent decompression, to see what was sent.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 200}, Timeout: 20 * time.Second}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func decode(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return b
	case "gzip":
		zr, err := stdgzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return out
}

// TestCompressWithCache: the cache stores the identity body once; every client, hit or miss,
// gets the encoding it asked for, with a correct Content-Length, Vary and a weak ETag.
func TestCompressWithCache(t *testing.T) {
	body := catalogJSON()
	var hits atomic.Int64
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=60")
		ctx.Response.Header.Set("ETag", `"cat-1"`)
		ctx.SetBody(body)
	})
	gw := gatewaytest.Start(t, gatewayConfig(up))
	steps := []struct{ ae, coding, xcache string }{
		{"gzip", "gzip", "MISS"},
		{"br;q=1, gzip;q=0.5", "br", "HIT"},
		{"", "", "HIT"},
		{"zstd, br, gzip", "zstd", "HIT"},
		{"identity", "", "HIT"},
		{"gzip;q=0, *", "zstd", "HIT"},
	}
	for _, s := range steps {
		resp, got := get(t, gw.URL+"/catalog", "Accept-Encoding", s.ae)
		if resp.StatusCode != 200 {
			t.Fatalf("AE %q: status %d", s.ae, resp.StatusCode)
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != s.coding {
			t.Errorf("AE %q: Content-Encoding %q, want %q", s.ae, ce, s.coding)
		}
		if xc := resp.Header.Get("X-Cache"); xc != s.xcache {
			t.Errorf("AE %q: X-Cache %q, want %q", s.ae, xc, s.xcache)
		}
		if resp.ContentLength != int64(len(got)) {
			t.Errorf("AE %q: Content-Length %d, body %d", s.ae, resp.ContentLength, len(got))
		}
		if !bytes.Equal(decode(t, s.coding, got), body) {
			t.Errorf("AE %q: decoded body differs", s.ae)
		}
		if v := resp.Header.Values("Vary"); !strings.Contains(strings.ToLower(strings.Join(v, ",")), "accept-encoding") {
			t.Errorf("AE %q: Vary %q", s.ae, v)
		}
		wantETag := `W/"cat-1"`
		if s.coding == "" {
			wantETag = `"cat-1"`
		}
		if et := resp.Header.Get("ETag"); et != wantETag {
			t.Errorf("AE %q: ETag %q, want %q", s.ae, et, wantETag)
		}
		if s.xcache == "HIT" && resp.Header.Get("Age") == "" {
			t.Errorf("AE %q: hit without Age", s.ae)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("upstream reached %d times, want once", hits.Load())
	}
	// The weak ETag a compressed response carried revalidates against the stored entry.
	resp, got := get(t, gw.URL+"/catalog", "Accept-Encoding", "gzip", "If-None-Match", `W/"cat-1"`)
	if resp.StatusCode != 304 || len(got) != 0 {
		t.Errorf("If-None-Match: %d with %d bytes, want 304", resp.StatusCode, len(got))
	}
	// HEAD from the cache: no body, identity length.
	req, _ := http.NewRequest("HEAD", gw.URL+"/catalog", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	hr, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.Header.Get("X-Cache") != "HIT" || hr.Header.Get("Content-Encoding") != "" || hr.ContentLength != int64(len(body)) {
		t.Errorf("HEAD: X-Cache %q CE %q length %d", hr.Header.Get("X-Cache"), hr.Header.Get("Content-Encoding"), hr.ContentLength)
	}
	if hits.Load() != 1 {
		t.Errorf("upstream reached %d times, want once", hits.Load())
	}
}

// cacheFilter finds the running cache filter, to wait until requests are coalesced.
func cacheFilter(t *testing.T, gw *gatewaytest.Gateway) *cache.Filter {
	t.Helper()
	for _, p := range gw.Server.Gateway().Pipelines {
		for _, st := range p.Stages() {
			if f, ok := st.Filter.(*cache.Filter); ok {
				return f
			}
		}
	}
	t.Fatal("no cache filter")
	return nil
}

// TestCoalescingEndToEnd: 100 concurrent clients ask for the same URL; the upstream answers once.
func TestCoalescingEndToEnd(t *testing.T) {
	const n = 100
	var hits atomic.Int64
	release := make(chan struct{})
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		select {
		case <-release:
		case <-time.After(15 * time.Second):
		}
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.Response.Header.Set("Cache-Control", "max-age=60")
		ctx.SetBodyString(`{"hot":true}`)
	})
	gw := gatewaytest.Start(t, gatewayConfig(up))
	f := cacheFilter(t, gw)
	var wg sync.WaitGroup
	var ok, miss atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := get(t, gw.URL+"/hot")
			if resp.StatusCode == 200 && string(body) == `{"hot":true}` {
				ok.Add(1)
			}
			if resp.Header.Get("X-Cache") == "MISS" {
				miss.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(15 * time.Second)
	for f.Waiting() < n-1 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	waiting := f.Waiting()
	close(release)
	wg.Wait()
	if waiting != n-1 {
		t.Errorf("%d requests were waiting, want %d", waiting, n-1)
	}
	if hits.Load() != 1 {
		t.Errorf("upstream reached %d times by %d concurrent misses, want once", hits.Load(), n)
	}
	if ok.Load() != n || miss.Load() != 1 {
		t.Errorf("%d good responses, %d misses", ok.Load(), miss.Load())
	}
}

// TestPrivateAndAuthorizedEndToEnd: personal responses are never served to someone else.
func TestPrivateAndAuthorizedEndToEnd(t *testing.T) {
	var hits atomic.Int64
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		n := hits.Add(1)
		ctx.Response.Header.Set("Content-Type", "text/plain")
		switch string(ctx.Path()) {
		case "/private":
			ctx.Response.Header.Set("Cache-Control", "private, max-age=60")
		case "/authorized":
			ctx.Response.Header.Set("Cache-Control", "max-age=60")
		case "/public":
			ctx.Response.Header.Set("Cache-Control", "public, max-age=60")
		}
		ctx.SetBodyString(fmt.Sprintf("%s %s #%d", ctx.Path(), ctx.Request.Header.Peek("Authorization"), n))
	})
	gw := gatewaytest.Start(t, gatewayConfig(up))
	for _, tc := range []struct {
		path   string
		auth   [2]string
		shared bool
	}{
		{"/private", [2]string{"", ""}, false},
		{"/authorized", [2]string{"Bearer alice", "Bearer bob"}, false},
		{"/public", [2]string{"Bearer alice", "Bearer bob"}, true},
	} {
		before := hits.Load()
		_, b1 := get(t, gw.URL+tc.path, "Authorization", tc.auth[0])
		r2, b2 := get(t, gw.URL+tc.path, "Authorization", tc.auth[1])
		shared := bytes.Equal(b1, b2)
		if shared != tc.shared {
			t.Errorf("%s: second client got %q after %q (X-Cache %s)", tc.path, b2, b1, r2.Header.Get("X-Cache"))
		}
		want := int64(2)
		if tc.shared {
			want = 1
		}
		if hits.Load()-before != want {
			t.Errorf("%s: upstream reached %d times, want %d", tc.path, hits.Load()-before, want)
		}
	}
}

// TestStaleWhileRevalidateEndToEnd: a stale entry is served at once while one background
// request, through the balancer, refreshes it.
func TestStaleWhileRevalidateEndToEnd(t *testing.T) {
	var hits atomic.Int64
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		n := hits.Add(1)
		ctx.Response.Header.Set("Content-Type", "text/plain")
		// The first version is stale as soon as stored and servable stale for a minute; the
		// refreshed one is fresh.
		cc := "max-age=60"
		if n == 1 {
			cc = "max-age=0, stale-while-revalidate=60"
		}
		ctx.Response.Header.Set("Cache-Control", cc)
		ctx.SetBodyString(fmt.Sprintf("v%d", n))
	})
	gw := gatewaytest.Start(t, gatewayConfig(up))
	if _, b := get(t, gw.URL+"/s"); string(b) != "v1" {
		t.Fatalf("first: %q", b)
	}
	r, b := get(t, gw.URL+"/s")
	if string(b) != "v1" || r.Header.Get("X-Cache") != "STALE" {
		t.Fatalf("stale: %q %s", b, r.Header.Get("X-Cache"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for hits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The refresh is stored right after the upstream answers.
	for time.Now().Before(deadline) {
		r, b = get(t, gw.URL+"/s")
		if string(b) == "v2" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if string(b) != "v2" || r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("after revalidation: %q %s", b, r.Header.Get("X-Cache"))
	}
	if hits.Load() != 2 {
		t.Errorf("upstream hits %d, want 2", hits.Load())
	}
}

// TestReloadKeepsStore: a hot reload with the same cache size keeps what was stored; a new
// max_bytes starts empty.
func TestReloadKeepsStore(t *testing.T) {
	var hits atomic.Int64
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		n := hits.Add(1)
		ctx.Response.Header.Set("Content-Type", "text/plain")
		ctx.Response.Header.Set("Cache-Control", "max-age=60")
		ctx.SetBodyString(fmt.Sprintf("v%d", n))
	})
	src := gatewayConfig(up)
	gw := gatewaytest.Start(t, src)
	if _, b := get(t, gw.URL+"/k"); string(b) != "v1" {
		t.Fatalf("first: %q", b)
	}
	<-gw.Server.Swap(gatewaytest.Build(t, src, gw.Dir))
	if r, b := get(t, gw.URL+"/k"); string(b) != "v1" || r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("after an identical reload: %q %s, want the stored v1", b, r.Header.Get("X-Cache"))
	}
	<-gw.Server.Swap(gatewaytest.Build(t, strings.Replace(src, `"8MiB"`, `"4MiB"`, 1), gw.Dir))
	if r, b := get(t, gw.URL+"/k"); string(b) != "v2" || r.Header.Get("X-Cache") != "MISS" {
		t.Errorf("after resizing: %q %s, want a fresh fetch", b, r.Header.Get("X-Cache"))
	}
}

// TestRevalidationEndToEnd: a stale entry with an ETag is revalidated with If-None-Match; the
// upstream's 304 costs no body and the client still gets the full (compressed) response.
func TestRevalidationEndToEnd(t *testing.T) {
	body := catalogJSON()
	var hits, notModified atomic.Int64
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		ctx.Response.Header.Set("ETag", `"cat-7"`)
		if string(ctx.Request.Header.Peek("If-None-Match")) == `"cat-7"` {
			notModified.Add(1)
			ctx.Response.Header.Set("Cache-Control", "max-age=60")
			ctx.SetStatusCode(304)
			return
		}
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.Response.Header.Set("Cache-Control", "max-age=0") // stale at once
		ctx.SetBody(body)
	})
	gw := gatewaytest.Start(t, gatewayConfig(up))
	if r, _ := get(t, gw.URL+"/cat"); r.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first: %s", r.Header.Get("X-Cache"))
	}
	r, got := get(t, gw.URL+"/cat", "Accept-Encoding", "gzip")
	if r.StatusCode != 200 || r.Header.Get("X-Cache") != "REVALIDATED" || r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("revalidation: %d %s %q", r.StatusCode, r.Header.Get("X-Cache"), r.Header.Get("Content-Encoding"))
	}
	if !bytes.Equal(decode(t, "gzip", got), body) {
		t.Error("revalidated body differs")
	}
	if r, _ := get(t, gw.URL+"/cat"); r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("after the 304 (max-age=60): %s", r.Header.Get("X-Cache"))
	}
	if hits.Load() != 2 || notModified.Load() != 1 {
		t.Errorf("upstream: %d requests, %d answered 304", hits.Load(), notModified.Load())
	}
}
