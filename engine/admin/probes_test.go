package admin_test

import (
	"fmt"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// TestProbesWithoutToken: with probes_without_token, /healthz and /readyz answer without the
// token (a Kubernetes probe cannot send one) and every other path still needs it.
func TestProbesWithoutToken(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
admin {
  token                = "pr0be-t0ken-0123456789"
  probes_without_token = true
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, up))
	base := startAdmin(t, gw, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := fetch(t, "GET", base+p, ""); code != 200 {
			t.Errorf("%s without the token: %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/config", "/upstreams", "/metrics", "/healthz/x", "/readyz?x"} {
		want := 401
		if p == "/readyz?x" {
			want = 200 // the path is /readyz
		}
		if code, _ := fetch(t, "GET", base+p, ""); code != want {
			t.Errorf("%s without the token: %d, want %d", p, code, want)
		}
	}
	if code, _ := fetch(t, "POST", base+"/reload", ""); code != 401 {
		t.Errorf("POST /reload without the token: %d, want 401", code)
	}
	if code, _ := fetch(t, "GET", base+"/config", "pr0be-t0ken-0123456789"); code != 200 {
		t.Errorf("/config with the token: %d, want 200", code)
	}
}
