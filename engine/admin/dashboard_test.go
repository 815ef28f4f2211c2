package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

func dashGateway(t *testing.T, adminBlock string) *gatewaytest.Gateway {
	t.Helper()
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	return gatewaytest.Start(t, fmt.Sprintf(`%s
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    request_set = { "X-Dash" = "1" }
  }
  filter "fault" {
    header       = "X-Never-Sent"
    abort_status = 503
  }
  balancer { upstream = upstream.u }
}
`, adminBlock, up))
}

func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestDashboardSessionAndCSRF(t *testing.T) {
	const token = "dash-t0ken-0123456789"
	gw := dashGateway(t, `admin {
  token = "`+token+`"
}`)
	reloads := 0
	base := startAdmin(t, gw, func() (string, error) { reloads++; return "", nil })

	// Refused without the token; the pages go to the login form.
	if r, _ := do(t, noRedirect, "GET", base+"/api/v1/overview", nil, ""); r.StatusCode != 401 {
		t.Errorf("overview without the token: %d", r.StatusCode)
	}
	if r, _ := do(t, noRedirect, "GET", base+"/ui/", nil, ""); r.StatusCode != 303 || r.Header.Get("Location") != "/ui/login" && !strings.HasSuffix(r.Header.Get("Location"), "/ui/login") {
		t.Errorf("/ui/ without the token: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r, body := do(t, noRedirect, "GET", base+"/ui/login", nil, "")
	if r.StatusCode != 200 || !strings.Contains(body, `id="login-form"`) {
		t.Fatalf("login page: %d", r.StatusCode)
	}
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}

	// A wrong token, then the right one: a session cookie that is not the token.
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if r, _ := do(t, noRedirect, "POST", base+"/ui/login", form, "token=wrong"); r.StatusCode != 303 || len(r.Cookies()) != 0 {
		t.Errorf("a wrong token: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	form["Origin"] = "http://evil.example"
	if r, _ := do(t, noRedirect, "POST", base+"/ui/login", form, "token="+url.QueryEscape(token)); len(r.Cookies()) != 0 {
		t.Errorf("a login posted from another origin set %v", r.Cookies())
	}
	delete(form, "Origin")
	r, _ = do(t, noRedirect, "POST", base+"/ui/login", form, "token="+url.QueryEscape(token))
	if r.StatusCode != 303 || len(r.Cookies()) != 1 {
		t.Fatalf("login: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	ck := r.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || strings.Contains(ck.Value, token) || ck.MaxAge <= 0 {
		t.Errorf("session cookie = %+v", ck)
	}
	session := map[string]string{"Cookie": ck.Name + "=" + ck.Value}
	if r, _ := do(t, noRedirect, "GET", base+"/ui/", session, ""); r.StatusCode != 200 {
		t.Errorf("/ui/ with the session: %d", r.StatusCode)
	}
	// The session opens the dashboard's API, not the original endpoints.
	if r, _ := do(t, noRedirect, "GET", base+"/config", session, ""); r.StatusCode != 401 {
		t.Errorf("/config with the session cookie: %d, want 401 (bearer only)", r.StatusCode)
	}
	forged := map[string]string{"Cookie": ck.Name + "=" + strings.Split(ck.Value, ".")[0] + ".00"}
	if r, _ := do(t, noRedirect, "GET", base+"/api/v1/overview", forged, ""); r.StatusCode != 401 {
		t.Errorf("a forged session: %d", r.StatusCode)
	}
	expired := map[string]string{"Cookie": ck.Name + "=" + fmt.Sprint(time.Now().Add(-time.Minute).Unix()) + "." + strings.Split(ck.Value, ".")[1]}
	if r, _ := do(t, noRedirect, "GET", base+"/api/v1/overview", expired, ""); r.StatusCode != 401 {
		t.Errorf("a session with a changed expiry: %d", r.StatusCode)
	}
	_, body = do(t, noRedirect, "GET", base+"/api/v1/session", session, "")
	var sess struct {
		Auth string `json:"auth"`
		CSRF string `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(body), &sess); err != nil || sess.Auth != "cookie" || sess.CSRF == "" {
		t.Fatalf("session: %s (%v)", body, err)
	}

	// Reload: the session needs the CSRF token (and the admin API's own origin); the bearer
	// token alone is enough.
	if r, _ := do(t, noRedirect, "POST", base+"/api/v1/reload", session, ""); r.StatusCode != 403 {
		t.Errorf("reload with the session and no CSRF token: %d", r.StatusCode)
	}
	withCSRF := map[string]string{"Cookie": session["Cookie"], "X-CSRF-Token": sess.CSRF, "Origin": "http://evil.example"}
	if r, _ := do(t, noRedirect, "POST", base+"/api/v1/reload", withCSRF, ""); r.StatusCode != 403 {
		t.Errorf("reload from another origin: %d", r.StatusCode)
	}
	delete(withCSRF, "Origin")
	if r, _ := do(t, noRedirect, "POST", base+"/api/v1/reload", withCSRF, ""); r.StatusCode != 200 {
		t.Errorf("reload with the session and its CSRF token: %d", r.StatusCode)
	}
	if r, _ := do(t, noRedirect, "POST", base+"/api/v1/reload", map[string]string{"Authorization": "Bearer " + token}, ""); r.StatusCode != 200 {
		t.Errorf("reload with the bearer token: %d", r.StatusCode)
	}
	if reloads != 2 {
		t.Errorf("%d reloads ran, want 2", reloads)
	}
	if r, _ := do(t, noRedirect, "POST", base+"/ui/logout", session, ""); r.StatusCode != 303 || len(r.Cookies()) != 1 || r.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d %v", r.StatusCode, r.Cookies())
	}
}

func TestDashboardAPIWithoutToken(t *testing.T) {
	gw := dashGateway(t, "")
	base := startAdmin(t, gw, func() (string, error) { return "bad.hcl:1:1: error: nope\n", fmt.Errorf("refused") })
	for i := 0; i < 5; i++ {
		resp, err := http.Get(gw.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A name other than an address or localhost (DNS rebinding) is refused.
	if r, _ := do(t, noRedirect, "GET", base+"/api/v1/overview", map[string]string{"Host": "evil.example"}, ""); r.StatusCode != 403 {
		t.Errorf("Host: evil.example: %d, want 403", r.StatusCode)
	}
	_, body := do(t, noRedirect, "GET", base+"/api/v1/pipelines", nil, "")
	var pipes []struct {
		Name    string `json:"name"`
		Filters []struct {
			Label       string `json:"label"`
			Requests    uint64 `json:"requests"`
			RequestOnly bool   `json:"request_only"`
		} `json:"filters"`
		Balancer struct {
			Requests uint64 `json:"requests"`
		} `json:"balancer"`
	}
	// fault has no response phase (engine.RequestOnly): the view says so, the dashboard shows none.
	if err := json.Unmarshal([]byte(body), &pipes); err != nil || len(pipes) != 1 || len(pipes[0].Filters) != 2 ||
		pipes[0].Filters[0].Label != "headers" || pipes[0].Filters[0].Requests != 5 || pipes[0].Filters[0].RequestOnly ||
		pipes[0].Filters[1].Label != "fault" || pipes[0].Filters[1].Requests != 5 || !pipes[0].Filters[1].RequestOnly ||
		pipes[0].Balancer.Requests != 5 {
		t.Errorf("pipelines = %s (%v)", body, err)
	}
	// Without a token a reload still needs the CSRF token (a page of another site could post).
	if r, _ := do(t, noRedirect, "POST", base+"/api/v1/reload", nil, ""); r.StatusCode != 403 {
		t.Errorf("reload without the CSRF token: %d", r.StatusCode)
	}
	_, body = do(t, noRedirect, "GET", base+"/api/v1/session", nil, "")
	var sess struct {
		CSRF string `json:"csrf_token"`
	}
	_ = json.Unmarshal([]byte(body), &sess)
	r, body := do(t, noRedirect, "POST", base+"/api/v1/reload", map[string]string{"X-CSRF-Token": sess.CSRF}, "")
	if r.StatusCode != 422 || !strings.Contains(body, "error: nope") {
		t.Errorf("a refused reload: %d %s", r.StatusCode, body)
	}
	// The event stream sends a snapshot.
	resp, err := http.Get(base + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(resp.Body, buf, 30)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(string(buf[:n]), "event: snapshot\ndata: {") {
		t.Errorf("events: %s %q", resp.Header.Get("Content-Type"), buf[:n])
	}
	for _, p := range []string{"/api/v1/overview", "/api/v1/upstreams", "/api/v1/traces", "/api/v1/limits", "/api/v1/wasm", "/api/v1/config", "/ui/", "/ui/assets/app.js", "/ui/assets/style.css"} {
		if r, _ := do(t, noRedirect, "GET", base+p, nil, ""); r.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, r.StatusCode)
		}
	}
	if r, _ := do(t, noRedirect, "GET", base+"/ui/assets/../../admin.go", nil, ""); r.StatusCode != 404 {
		t.Errorf("a path out of the assets: %d", r.StatusCode)
	}
}
