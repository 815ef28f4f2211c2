package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine/admin"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

func startAdmin(t *testing.T, gw *gatewaytest.Gateway, reload admin.Reloader) string {
	t.Helper()
	spec := gw.Server.Gateway().Spec
	a := admin.New(spec.Admin, gw.Server.Gateway, reload)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Serve(ln) }()
	t.Cleanup(func() { _ = a.Shutdown() })
	return "http://" + ln.Addr().String()
}

func fetch(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPI(t *testing.T) {
	t.Setenv("SLUICE_TEST_ADMIN_TOKEN", "adm1n-t0ken")
	t.Setenv("SLUICE_TEST_REDIS_PASSWORD", "redis-pa55")
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
admin {
  token = env("SLUICE_TEST_ADMIN_TOKEN")
}
redis "main" {
  address  = "127.0.0.1:6379"
  password = env("SLUICE_TEST_REDIS_PASSWORD")
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    request_set = { "X-Gateway" = "sluice" }
  }
  balancer { upstream = upstream.u }
}
`, up))
	base := startAdmin(t, gw, nil)
	const token = "adm1n-t0ken"

	if code, _ := fetch(t, "GET", base+"/healthz", ""); code != 401 {
		t.Errorf("/healthz without the token: %d, want 401", code)
	}
	if code, _ := fetch(t, "GET", base+"/healthz", "wrong"); code != 401 {
		t.Errorf("/healthz with a wrong token: %d, want 401", code)
	}
	if code, body := fetch(t, "GET", base+"/healthz", token); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := fetch(t, "GET", base+"/readyz", token); code != 200 || !strings.Contains(body, `"ready": true`) {
		t.Errorf("/readyz: %d %q", code, body)
	}

	code, body := fetch(t, "GET", base+"/config", token)
	if code != 200 {
		t.Fatalf("/config: %d", code)
	}
	for _, secret := range []string{"adm1n-t0ken", "redis-pa55"} {
		if strings.Contains(body, secret) {
			t.Errorf("/config leaks a secret %q:\n%s", secret, body)
		}
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatalf("/config is not JSON: %v", err)
	}
	if !strings.Contains(body, `"[redacted]"`) || !strings.Contains(body, `"X-Gateway": "sluice"`) {
		t.Errorf("/config lacks the redaction marker or the filter config:\n%s", body)
	}

	if code, body := fetch(t, "GET", base+"/upstreams", token); code != 200 || !strings.Contains(body, up) {
		t.Errorf("/upstreams: %d, does not name the target %s:\n%s", code, up, body)
	}

	// Metrics change as requests flow.
	before := metricValue(t, base, token)
	for i := 0; i < 3; i++ {
		if resp, err := http.Get(gw.URL + "/x"); err == nil {
			resp.Body.Close()
		}
	}
	if after := metricValue(t, base, token); after < before+3 {
		t.Errorf("requests metric went from %v to %v after 3 requests", before, after)
	}

	if code, _ := fetch(t, "GET", base+"/reload", token); code != 405 {
		t.Errorf("GET /reload: %d, want 405", code)
	}
	if code, _ := fetch(t, "POST", base+"/reload", token); code != 501 {
		t.Errorf("POST /reload without a reloader: %d, want 501", code)
	}
}

// metricValue sums sluice_requests_total over every label set.
func metricValue(t *testing.T, base, token string) float64 {
	t.Helper()
	code, body := fetch(t, "GET", base+"/metrics", token)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "sluice_requests_total{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			sum += v
		}
	}
	return sum
}

// TestConfigRedactsSecrets: /config hides header values named like credentials, URL userinfo,
// credential query parameters and bearer tokens, wherever they are in the configuration, and
// keeps everything else readable.
func TestConfigRedactsSecrets(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
telemetry {
  headers = { "x-honeycomb-team" = "h0ney-k3y", "dd-api-key" = "d0g-k3y" }
  traces {
    exporter = "none"
    endpoint = "http://otel:tr4ce-pa55@127.0.0.1:4318/v1/traces"
  }
  logs {
    endpoint = "https://collector.example/v1/logs?api_key=l0gs-k3y&region=eu"
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    request_set = {
      "Authorization" = "Bearer up5tream-t0ken-123"
      "X-Api-Key"     = "x-ap1-k3y"
      "X-Callback"    = "https://hooks.example/cb?access_token=cb-t0ken-9"
      "X-Gateway"     = "sluice"
    }
    response_set = { "Set-Cookie" = "sid=c00kie-val" }
  }
  balancer { upstream = upstream.u }
}
pipeline "internal" {
  match {
    path_prefix = "/internal/"
    header "Authorization" { exact = "Bearer m4tch-t0ken" }
    header "x-canary" { exact = "1" }
  }
  balancer { upstream = upstream.u }
}
`, up))
	base := startAdmin(t, gw, nil)
	code, body := fetch(t, "GET", base+"/config", "")
	if code != 200 {
		t.Fatalf("/config: %d", code)
	}
	for _, s := range []string{"tr4ce-pa55", "l0gs-k3y", "up5tream-t0ken-123", "x-ap1-k3y", "cb-t0ken-9", "c00kie-val", "m4tch-t0ken", "h0ney-k3y", "d0g-k3y"} {
		if strings.Contains(body, s) {
			t.Errorf("/config shows the secret %q:\n%s", s, body)
		}
	}
	for _, s := range []string{
		`"http://[redacted]@127.0.0.1:4318/v1/traces"`,
		`"https://collector.example/v1/logs?api_key=[redacted]\u0026region=eu"`,
		`"Authorization": "[redacted]"`, `"X-Api-Key": "[redacted]"`,
		`"https://hooks.example/cb?access_token=[redacted]"`, `"X-Gateway": "sluice"`,
		`"Authorization exact \"[redacted]\""`, `"x-canary exact \"1\""`,
		`"x-honeycomb-team": "[redacted]"`, `"dd-api-key": "[redacted]"`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("/config lacks %s:\n%s", s, body)
		}
	}
}

// TestReloadErrorHidesCredentials: a failed reload's error text is shown without URL credentials.
func TestReloadErrorHidesCredentials(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	base := startAdmin(t, gw, func() (string, error) {
		return "", fmt.Errorf("telemetry: exporting to http://otel:s3cret-pw@collector:4318: connection refused")
	})
	code, body := fetch(t, "POST", base+"/reload", "")
	if code != 422 || strings.Contains(body, "s3cret") || !strings.Contains(body, "http://[redacted]@collector:4318") {
		t.Errorf("POST /reload: %d %s; want 422 with the URL's credentials hidden", code, body)
	}
}
