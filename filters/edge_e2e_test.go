package filters_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// seenRequests records what an upstream received.
type seenRequests struct {
	mu   sync.Mutex
	reqs []string // "METHOD TARGET\nheaders"
}

func (s *seenRequests) handler(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	s.reqs = append(s.reqs, fmt.Sprintf("%s %s\n%s", ctx.Method(), ctx.Request.Header.RequestURI(), ctx.Request.Header.String()))
	s.mu.Unlock()
	// An upstream with its own, too generous, CORS answer: the gateway's policy replaces it.
	ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
	ctx.WriteString("upstream")
}

func (s *seenRequests) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

// rawRequest sends one request as written and reads the response.
func rawRequest(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Header.Set("X-Test-Body", string(body))
	return resp
}

func sha(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

const edgeConfig = `
server {
  trusted_proxies = ["127.0.0.1/32"]
  protocols       = ["http1", "h2c"]
}
upstream "app" {
  target {
    address = %q
  }
}
pipeline "api" {
  match {
    path_prefix = "/api/"
  }
  filter "otel_log" {
    output          = "access.log"
    format          = "json"
    request_headers = ["x-api-key", "user-agent"]
    redact          = ["x-api-key"]
  }
  filter "cors" {
    allow_origins     = ["https://app.example.com", "https://*.example.com"]
    allow_headers     = ["Content-Type", "X-API-Key"]
    expose_headers    = ["X-Total"]
    allow_credentials = true
    max_age           = "5m"
  }
  filter "ip_filter" {
    deny_file = "deny.txt"
  }
  filter "key_auth" {
    keys_file = "keys.txt"
    query     = "api_key"
  }
  filter "authorize" {
    rule {
      path_prefix = "/api/admin/"
      consumers   = ["acme"]
    }
  }
  filter "rate_limit" {
    key     = "consumer"
    limit   = 5
    period  = "1h"
    burst   = 5
  }
  balancer {
    upstream = upstream.app
  }
}
`

// TestEdgeFiltersE2E runs cors, ip_filter, key_auth, authorize's consumers, rate_limit's
// consumer key and otel_log's consumer field through a real gateway with hostile requests.
func TestEdgeFiltersE2E(t *testing.T) {
	const (
		keyAcme    = "ak_3b9e1c7f0d2a4b6c8e1f3a5c7e9b0d2f"
		keyAcmeNew = "ak_rotated_7c1e3a5b9d0f2e4c6a8b1d3f5e7a9c0b"
		keyGlobex  = "gk_5d2c8a1e7f3b9d0c4e6a2b8f1d7c3e9a"
	)
	up := &seenRequests{}
	src := fmt.Sprintf(edgeConfig, gatewaytest.Upstream(t, up.handler))
	dir := t.TempDir()
	g := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir, Files: map[string][]byte{
		"keys.txt": []byte("# consumer sha256\nacme " + sha(keyAcme) + "\nglobex sha256:" + sha(keyGlobex) + "\n"),
		"deny.txt": []byte("203.0.113.0/24 # abusers\n2001:db8:bad::/48\n"),
	}})

	get := func(extra string) *http.Response {
		return rawRequest(t, g.Addr, "GET /api/items?x=1 HTTP/1.1\r\nHost: gw\r\n"+extra+"Connection: close\r\n\r\n")
	}

	t.Run("cors preflight", func(t *testing.T) {
		for _, tc := range []struct {
			origin, method, headers string
			ok                      bool
		}{
			{"https://app.example.com", "PUT", "content-type, x-api-key", true},
			{"https://shop.example.com", "DELETE", "", true},
			{"https://app.example.com", "PUT", "x-evil", false},
			{"https://app.example.com", "TRACE", "", false},
			{"https://app.example.evil.com", "PUT", "", false},
			{"https://a.b.example.com", "PUT", "", false},
			{"null", "PUT", "", false},
		} {
			req := "OPTIONS /api/items HTTP/1.1\r\nHost: gw\r\nOrigin: " + tc.origin + "\r\nAccess-Control-Request-Method: " + tc.method + "\r\n"
			if tc.headers != "" {
				req += "Access-Control-Request-Headers: " + tc.headers + "\r\n"
			}
			resp := rawRequest(t, g.Addr, req+"Connection: close\r\n\r\n")
			acao := resp.Header.Get("Access-Control-Allow-Origin")
			if tc.ok && (resp.StatusCode != 204 || acao != tc.origin || resp.Header.Get("Access-Control-Allow-Credentials") != "true" ||
				resp.Header.Get("Access-Control-Max-Age") != "300") {
				t.Errorf("%+v: %d %v", tc, resp.StatusCode, resp.Header)
			}
			if !tc.ok && (resp.StatusCode != 403 || acao != "" || resp.Header.Get("Access-Control-Allow-Methods") != "") {
				t.Errorf("%+v: %d ACAO %q", tc, resp.StatusCode, acao)
			}
			if !strings.Contains(resp.Header.Get("Vary"), "Origin") {
				t.Errorf("%+v: no Vary: Origin", tc)
			}
		}
		if got := up.take(); len(got) != 0 {
			t.Errorf("preflights reached the upstream: %q", got)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		// The same filters over HTTP/2: a preflight answered, a key checked and removed.
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p}}
		req, _ := http.NewRequest("OPTIONS", g.URL+"/api/items", nil)
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("Access-Control-Request-Method", "PUT")
		req.Header.Set("Access-Control-Request-Headers", "x-api-key")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" {
			t.Errorf("h2c preflight: %s %d %v", resp.Proto, resp.StatusCode, resp.Header)
		}
		req, _ = http.NewRequest("GET", g.URL+"/api/items", nil)
		req.Header.Set("X-API-Key", keyGlobex)
		if resp, err = client.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := up.take()
		if resp.StatusCode != 200 || len(got) != 1 || strings.Contains(got[0], keyGlobex) {
			t.Errorf("h2c key: %d, upstream saw %q", resp.StatusCode, got)
		}
	})

	t.Run("cors actual request", func(t *testing.T) {
		resp := get("Origin: https://app.example.com\r\nX-API-Key: " + keyGlobex + "\r\n")
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Expose-Headers") != "X-Total" ||
			!strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("allowed origin: %d %v", resp.StatusCode, resp.Header)
		}
		resp = get("Origin: https://app.example.evil.com\r\nX-API-Key: " + keyGlobex + "\r\n")
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("look-alike origin: %d %v (the upstream's * must be removed)", resp.StatusCode, resp.Header)
		}
		up.take()
	})

	t.Run("key_auth", func(t *testing.T) {
		before := map[string]float64{}
		for _, r := range []string{"missing", "unknown", "ambiguous"} {
			before[r] = counterValue(t, "sluice_key_auth_refused_total", "reason", r)
		}
		defer func() {
			for r, want := range map[string]float64{"missing": 2, "unknown": 2, "ambiguous": 2} {
				if got := counterValue(t, "sluice_key_auth_refused_total", "reason", r) - before[r]; got != want {
					t.Errorf("sluice_key_auth_refused_total{reason=%q} rose by %v, want %v", r, got, want)
				}
			}
		}()
		for _, tc := range []struct {
			name, target, headers string
			ok                    bool
		}{
			{"forged", "/api/items", "X-API-Key: " + keyAcme + "0\r\n", false},
			{"hash as key", "/api/items", "X-API-Key: " + sha(keyAcme) + "\r\n", false},
			{"none", "/api/items", "", false},
			{"two keys", "/api/items", "X-API-Key: " + keyAcme + "\r\nX-API-Key: " + keyGlobex + "\r\n", false},
			{"header and query", "/api/items?api_key=" + keyGlobex, "X-API-Key: " + keyAcme + "\r\n", false},
			{"underscore spelling only", "/api/items", "X_API_Key: " + keyAcme + "\r\n", false},
			{"header", "/api/items?a=1", "X-API-Key: " + keyAcme + "\r\nX_API_KEY: smuggled\r\n", true},
			{"query", "/api/items?a=1&api%5Fkey=" + keyGlobex + "&b=2", "", true},
		} {
			resp := rawRequest(t, g.Addr, "GET "+tc.target+" HTTP/1.1\r\nHost: gw\r\n"+tc.headers+"Connection: close\r\n\r\n")
			got := up.take()
			if !tc.ok {
				if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `APIKey realm="api"` || len(got) != 0 {
					t.Errorf("%s: %d %q, upstream saw %q", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), got)
				}
				continue
			}
			if resp.StatusCode != 200 || len(got) != 1 {
				t.Errorf("%s: %d, upstream saw %q", tc.name, resp.StatusCode, got)
				continue
			}
			low := strings.ToLower(got[0])
			if strings.Contains(got[0], keyAcme) || strings.Contains(got[0], keyGlobex) || strings.Contains(low, "api-key") ||
				strings.Contains(low, "api_key") || strings.Contains(low, "smuggled") {
				t.Errorf("%s: the credential reached the upstream:\n%s", tc.name, got[0])
			}
			if tc.name == "query" && !strings.HasPrefix(got[0], "GET /api/items?a=1&b=2\n") {
				t.Errorf("query: upstream got %q", strings.SplitN(got[0], "\n", 2)[0])
			}
		}
	})

	t.Run("authorize consumers", func(t *testing.T) {
		resp := rawRequest(t, g.Addr, "GET /api/admin/x HTTP/1.1\r\nHost: gw\r\nX-API-Key: "+keyGlobex+"\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 403 || len(up.take()) != 0 {
			t.Errorf("globex on /api/admin/: %d", resp.StatusCode)
		}
	})

	t.Run("ip_filter after trusted_proxies", func(t *testing.T) {
		before := counterValue(t, "sluice_ip_filter_denied_total", "pipeline", "api")
		defer func() {
			if got := counterValue(t, "sluice_ip_filter_denied_total", "pipeline", "api") - before; got != 3 {
				t.Errorf("sluice_ip_filter_denied_total rose by %v, want 3", got)
			}
		}()
		for xff, want := range map[string]int{"203.0.113.9": 403, "198.51.100.1": 200, "2001:db8:bad::7": 403, "::ffff:203.0.113.9": 403} {
			resp := get("X-Forwarded-For: " + xff + "\r\nX-API-Key: " + keyAcme + "\r\n")
			if resp.StatusCode != want {
				t.Errorf("X-Forwarded-For %s: %d, want %d", xff, resp.StatusCode, want)
			}
		}
		up.take()
	})

	t.Run("per-consumer limit", func(t *testing.T) {
		// Each consumer has 5: acme spent 2 (a header key, the allowed X-Forwarded-For), globex 4
		// (h2c, two CORS requests, the query key). Four more each: the last is refused.
		statuses := func(key string) (codes []int) {
			for range 4 {
				codes = append(codes, get("X-API-Key: "+key+"\r\n").StatusCode)
			}
			return codes
		}
		acme, globex := statuses(keyAcme), statuses(keyGlobex)
		if fmt.Sprint(acme) != "[200 200 200 429]" || fmt.Sprint(globex) != "[200 429 429 429]" {
			t.Errorf("limits not enforced: acme %v globex %v", acme, globex)
		}
		up.take()
	})

	t.Run("key rotation on reload", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "keys.txt"), []byte("acme "+sha(keyAcmeNew)+"\nglobex "+sha(keyGlobex)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		<-g.Reload(t, src)
		if resp := get("X-API-Key: " + keyAcme + "\r\n"); resp.StatusCode != 401 {
			t.Errorf("the removed key after reload: %d", resp.StatusCode)
		}
		if resp := get("X-API-Key: " + keyAcmeNew + "\r\n"); resp.StatusCode != 200 {
			t.Errorf("the new key after reload: %d", resp.StatusCode)
		}
	})

	t.Run("logs and config", func(t *testing.T) {
		g.Stop(t) // flushes the access log
		b, err := os.ReadFile(filepath.Join(dir, "access.log"))
		if err != nil {
			t.Fatal(err)
		}
		log := string(b) + g.Logs()
		for _, k := range []string{keyAcme, keyAcmeNew, keyGlobex} {
			if strings.Contains(log, k) {
				for _, l := range strings.Split(log, "\n") {
					if strings.Contains(l, k) {
						t.Errorf("a key is in the logs: %s", l)
					}
				}
			}
		}
		if !strings.Contains(string(b), `"consumer":"acme","auth_method":"key_auth"`) {
			t.Errorf("no consumer in the access log:\n%s", b)
		}
	})
}

// TestKeyPastedAsHashHidden: a key pasted where its hash belongs is refused with a diagnostic whose
// source snippet does not show it.
func TestKeyPastedAsHashHidden(t *testing.T) {
	const key = "ak_live_3b9e1c7f0d2a4b6c8e1f3a5c7e9b0d2f"
	src := `upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  filter "key_auth" {
    key {
      consumer = "acme"
      key_hash = "` + key + `"
    }
  }
  balancer { upstream = upstream.u }
}
`
	cfg, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if !diags.HasErrors() {
		t.Fatal("a key in key_hash loaded")
	}
	var b strings.Builder
	_ = cfg.WriteDiagnostics(&b, diags)
	if strings.Contains(b.String(), key) || !strings.Contains(b.String(), "key_hash") {
		t.Errorf("diagnostics:\n%s", b.String())
	}
}

// TestEdgeFilesAreInputs: the keys and prefix files are inputs of the configuration, which
// `sluice run --watch` watches (a changed file rebuilds, so a rotated key takes effect).
func TestEdgeFilesAreInputs(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"keys.txt": "acme " + sha("k") + "\n", "allow.txt": "10.0.0.0/8\n", "deny.txt": "10.1.0.0/16\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := gatewaytest.Build(t, `upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  filter "ip_filter" {
    allow_file = "allow.txt"
    deny_file  = "deny.txt"
  }
  filter "key_auth" {
    keys_file = "keys.txt"
  }
  balancer { upstream = upstream.u }
}
`, dir)
	defer gw.Close()
	for _, name := range []string{"keys.txt", "allow.txt", "deny.txt"} {
		found := false
		for _, in := range gw.Inputs {
			if in == filepath.Join(dir, name) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s is not among the inputs %q", name, gw.Inputs)
		}
	}
}
