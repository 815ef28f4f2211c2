package engine_test

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/jwt"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// Filters behave the same whatever protocol the client speaks: one table of end-to-end
// assertions (jwt, rate_limit, cache, compress, otel_log, a Wasm guest) run against a real
// gateway loaded from HCL, over HTTP/1.1, h2c (prior knowledge) and h2 over TLS (ALPN).

// clientProto is a way a client talks to the gateway.
type clientProto struct {
	name   string
	tls    bool
	attrs  string // server attributes
	proto  string // Ctx.Proto, as otel_log records it
	client func() *http.Client
}

// protoClient is a client that speaks only the protocol set (TLS certificates not verified)
// and asks for no compression of its own.
func protoClient(set func(*http.Protocols, bool)) func() *http.Client {
	return func() *http.Client {
		var p http.Protocols
		set(&p, true)
		tr := &http.Transport{Protocols: &p, DisableCompression: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
}

var clientProtos = []clientProto{
	{name: "HTTP/1.1", attrs: `protocols = ["http1", "h2c"]`, proto: "HTTP/1.1", client: protoClient((*http.Protocols).SetHTTP1)},
	{name: "HTTP/1.1+TLS", tls: true, proto: "HTTP/1.1", client: protoClient((*http.Protocols).SetHTTP1)},
	{name: "h2c", attrs: `protocols = ["http1", "h2c"]`, proto: "HTTP/2.0", client: protoClient((*http.Protocols).SetUnencryptedHTTP2)},
	{name: "h2", tls: true, proto: "HTTP/2.0", client: protoClient((*http.Protocols).SetHTTP2)},
}

// parityGuest compiles the Wasm guest echo_body (filters/wasm/testdata) into dir.
func parityGuest(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "echo_body.wasm")
	if b, err := exec.Command("wat2wasm", "../filters/wasm/testdata/echo_body.wat", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm (wabt, installed by .ci/run): %v\n%s", err, b)
	}
	return out
}

const paritySecret = "parity-secret-0123456789-abcdefghijkl"

func TestFilterParityAcrossProtocols(t *testing.T) {
	t.Setenv("SLUICE_TEST_PARITY_SECRET", paritySecret)
	text := strings.Repeat("the same filters over every protocol. ", 100) // 3.8 KB, compressible
	var upstreamHits atomic.Int64
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		upstreamHits.Add(1)
		c.Response.Header.SetContentType("text/plain")
		if strings.HasPrefix(string(c.Path()), "/cache/") {
			c.Response.Header.Set("Cache-Control", "max-age=60")
		}
		fmt.Fprintf(c, "user=%s proto-seen=%s\n%s", c.Request.Header.Peek("X-User-Id"), c.Request.Header.Protocol(), text)
	})
	tok, err := jwt.Mint("HS256", []byte(paritySecret), "", map[string]any{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range clientProtos {
		t.Run(cp.name, func(t *testing.T) {
			dir := t.TempDir()
			tlsBlock := ""
			if cp.tls {
				gatewaytest.WriteCert(t, dir, "cert.pem", "key.pem")
				tlsBlock = `tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }`
			}
			guest := parityGuest(t, dir)
			gw := gatewaytest.StartWith(t, fmt.Sprintf(`
server {
  %s
  %s
}
upstream "u" {
  target { address = %q }
}
pipeline "jwt" {
  match { path_prefix = "/jwt/" }
  filter "jwt" {
    hmac_secret    = env("SLUICE_TEST_PARITY_SECRET")
    forward_claims = { sub = "X-User-Id" }
  }
  balancer { upstream = upstream.u }
}
pipeline "rl" {
  match { path_prefix = "/rl/" }
  filter "rate_limit" {
    key    = "ip"
    limit  = 3
    period = "1h"
    burst  = 3
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
pipeline "gz" {
  match { path_prefix = "/gz/" }
  filter "compress" {
    algorithms = ["gzip"]
    min_size   = "1KiB"
  }
  balancer { upstream = upstream.u }
}
pipeline "log" {
  match { path_prefix = "/log/" }
  filter "otel_log" {
    output = "access.log"
  }
  balancer { upstream = upstream.u }
}
pipeline "wasm" {
  match { path_prefix = "/wasm/" }
  filter "wasm" {
    module = %q
  }
  balancer { upstream = upstream.u }
}
`, cp.attrs, tlsBlock, up, guest), gatewaytest.Options{Dir: dir})
			client := cp.client()
			do := func(method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
				t.Helper()
				req, _ := http.NewRequest(method, gw.URL+path, body)
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s %s: reading the body: %v", method, path, err)
				}
				if got := fmt.Sprintf("HTTP/%d.%d", resp.ProtoMajor, resp.ProtoMinor); got != cp.proto {
					t.Fatalf("%s %s answered over %s, want %s", method, path, got, cp.proto)
				}
				return resp, b
			}

			// jwt: 401 with a challenge without a token; with one, the upstream sees the claim.
			resp, _ := do("GET", "/jwt/x", nil)
			if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("jwt without a token: %d %q, want 401 Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			resp, b := do("GET", "/jwt/x", nil, "Authorization", "Bearer "+tok, "X-User-Id", "mallory")
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "user=alice ") {
				t.Errorf("jwt with a token: %d %.40q, want 200 user=alice", resp.StatusCode, b)
			}

			// rate_limit: three pass, the fourth is 429 with Retry-After.
			for i := 1; i <= 4; i++ {
				resp, _ := do("GET", "/rl/x", nil)
				want := 200
				if i == 4 {
					want = 429
				}
				if resp.StatusCode != want {
					t.Errorf("rate_limit request %d: %d, want %d", i, resp.StatusCode, want)
				}
				if i == 4 && resp.Header.Get("Retry-After") == "" {
					t.Errorf("rate_limit 429 without Retry-After")
				}
			}

			// cache: the second request is a hit the upstream never sees.
			before := upstreamHits.Load()
			resp1, b1 := do("GET", "/cache/item", nil)
			resp2, b2 := do("GET", "/cache/item", nil)
			if resp1.Header.Get("X-Cache") != "MISS" || resp2.Header.Get("X-Cache") != "HIT" {
				t.Errorf("cache: X-Cache %q then %q, want MISS then HIT", resp1.Header.Get("X-Cache"), resp2.Header.Get("X-Cache"))
			}
			if !bytes.Equal(b1, b2) || upstreamHits.Load()-before != 1 {
				t.Errorf("cache: the upstream saw %d requests for two (bodies equal: %v)", upstreamHits.Load()-before, bytes.Equal(b1, b2))
			}

			// compress: gzip when accepted, the identity otherwise.
			resp, b = do("GET", "/gz/x", nil, "Accept-Encoding", "gzip")
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("compress: Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
			} else if zr, err := gzip.NewReader(bytes.NewReader(b)); err != nil {
				t.Errorf("compress: %v", err)
			} else if plain, err := io.ReadAll(zr); err != nil || !strings.HasSuffix(string(plain), text) {
				t.Errorf("compress: gunzipped %d bytes (%v), want the upstream's body", len(plain), err)
			}
			resp, b = do("GET", "/gz/x", nil)
			if resp.Header.Get("Content-Encoding") != "" || !strings.HasSuffix(string(b), text) {
				t.Errorf("compress without Accept-Encoding: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}

			// Wasm: the guest reads the whole request body (a streamed one when its length is
			// unknown) and answers with it.
			body := bytes.Repeat([]byte("wasm-"), 40<<10) // 200 KiB
			resp, b = do("POST", "/wasm/echo", bytes.NewReader(body))
			if resp.StatusCode != 200 || !bytes.Equal(b, body) {
				t.Errorf("wasm echo (length known): %d, %d bytes back of %d", resp.StatusCode, len(b), len(body))
			}
			resp, b = do("POST", "/wasm/echo", io.MultiReader(bytes.NewReader(body))) // no length: chunked / no content-length
			if resp.StatusCode != 200 || !bytes.Equal(b, body) {
				t.Errorf("wasm echo (length unknown): %d, %d bytes back of %d", resp.StatusCode, len(b), len(body))
			}

			// otel_log: one record, with the client's protocol.
			resp, _ = do("GET", "/log/x?secret=1", nil)
			if resp.StatusCode != 200 {
				t.Errorf("otel_log pipeline: %d", resp.StatusCode)
			}
			gw.Stop(t) // closes the filters: the record is on disk
			raw, err := os.ReadFile(filepath.Join(dir, "access.log"))
			if err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(bytes.TrimSpace(raw), &rec); err != nil {
				t.Fatalf("access log %q: %v", raw, err)
			}
			if rec["protocol"] != cp.proto || rec["path"] != "/log/x" || rec["status"] != float64(200) || rec["pipeline"] != "log" {
				t.Errorf("otel_log record %v: want protocol %s, path /log/x, status 200", rec, cp.proto)
			}
		})
	}
}
