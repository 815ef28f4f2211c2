package filters_test

import (
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/jwt"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestFiltersOverHTTP2 runs the same requests through jwt, rate_limit, cache and compress over
// HTTP/1.1 and over HTTP/2 (h2c and h2 over TLS): every filter must behave the same whatever the
// client's protocol. (otel_log: engine's TestH2OtelLogProtocol; a Wasm filter: the http-wasm TCK
// in filters/wasm runs over h2c too.)
func TestFiltersOverHTTP2(t *testing.T) {
	const secret = "h2-parity-test-secret-0123456789abcdef"
	body := strings.Repeat("sluice parity ", 300) // 4200 bytes: compressible, over min_size
	var hits atomic.Int64
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		hits.Add(1)
		c.Response.Header.Set("X-Seen-User", string(c.Request.Header.Peek("X-User-Id")))
		c.Response.Header.SetContentType("text/plain; charset=utf-8")
		if strings.HasPrefix(string(c.Path()), "/cache/") {
			c.Response.Header.Set("Cache-Control", "max-age=60")
		}
		c.SetBodyString(body)
	})
	dir := t.TempDir()
	gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
	src := func(server string) string {
		return fmt.Sprintf(`
server {
  %s
}
upstream "u" {
  target { address = %q }
}
pipeline "jwt" {
  match { path_prefix = "/jwt/" }
  filter "jwt" {
    hmac_secret    = %q
    forward_claims = { sub = "X-User-Id" }
  }
  balancer { upstream = upstream.u }
}
pipeline "rl" {
  match { path_prefix = "/rl/" }
  filter "rate_limit" {
    key    = "header:X-Client"
    limit  = 2
    period = "1m"
  }
  balancer { upstream = upstream.u }
}
pipeline "cache" {
  match { path_prefix = "/cache/" }
  filter "cache" {
    max_bytes     = "1MiB"
    status_header = true
  }
  balancer { upstream = upstream.u }
}
pipeline "compress" {
  match { path_prefix = "/compress/" }
  filter "compress" {
    algorithms = ["gzip"]
    min_size   = "1KiB"
  }
  balancer { upstream = upstream.u }
}
`, server, up, secret)
	}
	plainGW := gatewaytest.StartWith(t, src(`protocols = ["http1", "h2c"]`), gatewaytest.Options{Dir: dir})
	tlsGW := gatewaytest.StartWith(t, src(`tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }`), gatewaytest.Options{Dir: dir})

	client := func(h1, h2, h2c bool) *http.Client {
		var p http.Protocols
		p.SetHTTP1(h1)
		p.SetHTTP2(h2)
		p.SetUnencryptedHTTP2(h2c)
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Protocols: &p, DisableCompression: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	token, err := jwt.Mint("HS256", []byte(secret), "", map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}

	for _, pc := range []struct {
		name   string
		url    string
		client *http.Client
		proto  int
	}{
		{"http1", plainGW.URL, client(true, false, false), 1},
		{"h2c", plainGW.URL, client(false, false, true), 2},
		{"h2", tlsGW.URL, client(false, true, false), 2},
	} {
		t.Run(pc.name, func(t *testing.T) {
			do := func(path string, hdr ...string) (*http.Response, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", pc.url+path, nil)
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := pc.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.ProtoMajor != pc.proto {
					t.Fatalf("spoke %s", resp.Proto)
				}
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}

			// jwt: 401 without a token, the verified claim forwarded with one.
			if resp, _ := do("/jwt/x"); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("jwt without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if resp, _ := do("/jwt/x", "Authorization", "Bearer "+token, "X-User-Id", "mallory"); resp.StatusCode != 200 || resp.Header.Get("X-Seen-User") != "alice" {
				t.Errorf("jwt with a token: %d, the upstream saw X-User-Id %q", resp.StatusCode, resp.Header.Get("X-Seen-User"))
			}

			// rate_limit: two admitted, the third 429, with the limit headers.
			var statuses []int
			for range 3 {
				resp, _ := do("/rl/x", "X-Client", pc.name)
				statuses = append(statuses, resp.StatusCode)
				if resp.Header.Get("RateLimit") == "" || resp.Header.Get("RateLimit-Policy") == "" {
					t.Errorf("rate_limit answer without limit headers: %v", resp.Header)
				}
			}
			if fmt.Sprint(statuses) != "[200 200 429]" {
				t.Errorf("rate_limit statuses %v, want [200 200 429]", statuses)
			}

			// cache: a miss, then a hit the upstream never sees.
			before := hits.Load()
			r1, b1 := do("/cache/" + pc.name)
			r2, b2 := do("/cache/" + pc.name)
			if r1.Header.Get("X-Cache") != "MISS" || r2.Header.Get("X-Cache") != "HIT" || b1 != body || b2 != body {
				t.Errorf("cache: %q then %q (bodies %d, %d bytes)", r1.Header.Get("X-Cache"), r2.Header.Get("X-Cache"), len(b1), len(b2))
			}
			if n := hits.Load() - before; n != 1 {
				t.Errorf("cache: the upstream got %d requests, want 1", n)
			}

			// compress: gzip when asked, and the body decompresses to the upstream's.
			resp, zb := do("/compress/x", "Accept-Encoding", "gzip")
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("compress: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(strings.NewReader(zb))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || string(plain) != body {
				t.Errorf("compress: %d bytes after gunzip (%v), want the %d-byte body", len(plain), err, len(body))
			}
		})
	}
}
