package basicauth_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return "$2y$" + string(h[4:]) // as htpasswd -B writes it
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// seen is what the upstream received.
type seen struct {
	Authorization string `json:"authorization"`
	User          string `json:"user"`
}

// startGateway serves a basic_auth pipeline in front of an upstream echoing the Authorization
// and X-Auth-User headers it receives.
func startGateway(t *testing.T, htpasswd string) *gatewaytest.Gateway {
	gw, _ := startGatewaySrc(t, htpasswd)
	return gw
}

func startGatewaySrc(t *testing.T, htpasswd string) (*gatewaytest.Gateway, string) {
	t.Helper()
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		b, _ := json.Marshal(seen{string(c.Request.Header.Peek("Authorization")), string(c.Request.Header.Peek("X-Auth-User"))})
		c.SetBody(b)
	})
	src := fmt.Sprintf(`
upstream "app" {
  target {
    address = %q
  }
}
pipeline "private" {
  filter "basic_auth" {
    htpasswd_file = "users.htpasswd"
    realm         = "staff"
    user_header   = "X-Auth-User"
  }
  balancer {
    upstream = upstream.app
  }
}
`, up)
	return gatewaytest.StartWith(t, src, gatewaytest.Options{Files: map[string][]byte{"users.htpasswd": []byte(htpasswd)}}), src
}

func do(t *testing.T, url string, headers ...string) (int, http, seen) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var s seen
	if resp.StatusCode() == 200 {
		if err := json.Unmarshal(resp.Body(), &s); err != nil {
			t.Fatalf("%v: %q", err, resp.Body())
		}
	}
	return resp.StatusCode(), http{challenge: string(resp.Header.Peek("WWW-Authenticate")), body: string(resp.Body())}, s
}

type http struct{ challenge, body string }

// TestBasicAuthE2E runs hostile requests through a real gateway: no, malformed, forged and
// smuggled credentials are refused with the challenge; a good one reaches the upstream without
// its Authorization header and with the verified user, never the client's forged one.
func TestBasicAuthE2E(t *testing.T) {
	gw := startGateway(t, "alice:"+hash(t, "wonderland", 4)+"\n")
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
	}{
		{"none", nil, 401},
		{"forged user header only", []string{"X-Auth-User", "alice"}, 401},
		{"wrong password", []string{"Authorization", basic("alice", "Wonderland")}, 401},
		{"unknown user", []string{"Authorization", basic("root", "wonderland")}, 401},
		{"bearer", []string{"Authorization", "Bearer " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))}, 401},
		{"NUL in user", []string{"Authorization", basic("alice\x00", "wonderland")}, 401},
		{"two Authorization headers", []string{"Authorization", basic("root", "x"), "Authorization", basic("alice", "wonderland")}, 400},
		{"good, with a forged user header", []string{"Authorization", basic("alice", "wonderland"), "X-Auth-User", "root"}, 200},
		{"good, forged user header with underscore", []string{"Authorization", basic("alice", "wonderland"), "X_Auth_User", "root"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, s := do(t, gw.URL+"/x", tc.headers...)
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			switch status {
			case 401:
				if h.challenge != `Basic realm="staff", charset="UTF-8"` {
					t.Errorf("challenge %q", h.challenge)
				}
				if strings.Contains(h.body, "alice") || strings.Contains(h.body, "wonderland") {
					t.Errorf("the body echoes the credentials: %q", h.body)
				}
			case 200:
				if s.Authorization != "" || s.User != "alice" {
					t.Errorf("the upstream got Authorization %q and X-Auth-User %q; want none and alice", s.Authorization, s.User)
				}
			}
		})
	}
	if logs := gw.Logs(); strings.Contains(logs, "wonderland") || strings.Contains(logs, base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))) {
		t.Errorf("a password reached the logs:\n%s", logs)
	}
}

// TestUnknownUserTiming: an unknown user's refusal takes as long as a known user's wrong
// password (both run one bcrypt), so timing does not tell which users exist.
func TestUnknownUserTiming(t *testing.T) {
	gw := startGateway(t, "alice:"+hash(t, "wonderland", 8)+"\n")
	measure := func(auth string) time.Duration {
		var ds []time.Duration
		for range 5 {
			start := time.Now()
			if status, _, _ := do(t, gw.URL+"/x", "Authorization", auth); status != 401 {
				t.Fatalf("status %d", status)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	known, unknown := measure(basic("alice", "guess")), measure(basic("nobody", "guess"))
	t.Logf("median refusal: known user %v, unknown user %v", known, unknown)
	// A cost-10 bcrypt takes tens of milliseconds; a refusal without one well under one.
	if unknown < known/3 {
		t.Errorf("an unknown user is refused in %v, a known one in %v: user existence leaks by timing", unknown, known)
	}
}

// TestReloadInvalidatesCache: after the htpasswd file changes and the gateway reloads, a
// password verified (and cached) before no longer passes.
func TestReloadInvalidatesCache(t *testing.T) {
	gw, cfg := startGatewaySrc(t, "alice:"+hash(t, "old-password", 4)+"\n")
	if status, _, _ := do(t, gw.URL+"/x", "Authorization", basic("alice", "old-password")); status != 200 {
		t.Fatalf("before: %d", status)
	}
	if err := os.WriteFile(filepath.Join(gw.Dir, "users.htpasswd"), []byte("alice:"+hash(t, "new-password", 4)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	<-gw.Reload(t, cfg)
	if status, _, _ := do(t, gw.URL+"/x", "Authorization", basic("alice", "old-password")); status != 401 {
		t.Errorf("the old password after the reload: %d, want 401", status)
	}
	if status, _, _ := do(t, gw.URL+"/x", "Authorization", basic("alice", "new-password")); status != 200 {
		t.Errorf("the new password after the reload: %d, want 200", status)
	}
}

// TestGuessFloodDoesNotStarve: 16 clients sending wrong passwords as fast as they can, with
// max_concurrent_bcrypt = 1: most guesses are refused 503 at once, and a user whose credential is
// cached keeps being served quickly meanwhile.
func TestGuessFloodDoesNotStarve(t *testing.T) {
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("{}") })
	gw := gatewaytest.StartWith(t, fmt.Sprintf(`
upstream "app" {
  target {
    address = %q
  }
}
pipeline "private" {
  filter "basic_auth" {
    htpasswd_file         = "users.htpasswd"
    max_concurrent_bcrypt = 1
  }
  balancer {
    upstream = upstream.app
  }
}
`, up), gatewaytest.Options{Files: map[string][]byte{"users.htpasswd": []byte("alice:" + hash(t, "wonderland", 8) + "\n")}})
	good := basic("alice", "wonderland")
	if status, _, _ := do(t, gw.URL+"/x", "Authorization", good); status != 200 {
		t.Fatalf("alice: %d", status)
	}
	stop := make(chan struct{})
	var refused503, refused401 atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				status, _, _ := do(t, gw.URL+"/x", "Authorization", basic("alice", fmt.Sprintf("guess-%d-%d", i, n)))
				switch status {
				case 503:
					refused503.Add(1)
				case 401:
					refused401.Add(1)
				default:
					t.Errorf("a wrong password: %d", status)
				}
			}
		}()
	}
	var slowest time.Duration
	for range 20 {
		start := time.Now()
		if status, _, _ := do(t, gw.URL+"/x", "Authorization", good); status != 200 {
			t.Errorf("alice during the flood: %d, want 200", status)
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(20 * time.Millisecond) // spread alice's requests over the flood
	}
	close(stop)
	wg.Wait()
	t.Logf("flood: %d guesses refused 503, %d checked by bcrypt (401); alice's slowest request %v", refused503.Load(), refused401.Load(), slowest)
	if refused503.Load() == 0 {
		t.Error("no guess was refused 503: bcrypt is not bounded")
	}
	if slowest > time.Second {
		t.Errorf("a cached user's request took %v during the flood", slowest)
	}
}

// client is shared by the tests' requests, so that they reuse connections.
var client = gatewaytest.Client()
