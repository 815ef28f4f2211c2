package ratelimit_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

const hmacSecret = "0123456789abcdef0123456789abcdef-rate-limit-test"

// hs256 mints a signed token for sub.
func hs256(sub string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc.EncodeToString(fmt.Appendf(nil, `{"sub":%q,"exp":%d}`, sub, time.Now().Add(time.Hour).Unix()))
	mac := hmac.New(sha256.New, []byte(hmacSecret))
	mac.Write([]byte(head + "." + body))
	return head + "." + body + "." + enc.EncodeToString(mac.Sum(nil))
}

// TestClaimKey: behind the jwt filter, key = "claim:sub" gives each verified subject its own
// budget, whatever address it comes from.
func TestClaimKey(t *testing.T) {
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("ok") })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
upstream "app" {
  target {
    address = %q
  }
}
pipeline "api" {
  match {
    path_prefix = "/"
  }
  filter "jwt" {
    hmac_secret = %q
  }
  filter "rate_limit" {
    key    = "claim:sub"
    limit  = 1
    period = "1m"
  }
  balancer {
    upstream = upstream.app
  }
}
`, up, hmacSecret))
	client := gatewaytest.Client()
	status := func(token string) int {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(gw.URL + "/items")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if err := client.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode()
	}
	alice, bob := hs256("alice"), hs256("bob")
	for _, step := range []struct {
		who   string
		token string
		want  int
	}{
		{"alice", alice, 200},
		{"alice again", alice, 429},
		{"bob", bob, 200},
		{"bob again", bob, 429},
		{"no token (refused by jwt first)", "", 401},
	} {
		if got := status(step.token); got != step.want {
			t.Errorf("%s: status %d, want %d", step.who, got, step.want)
		}
	}
}
