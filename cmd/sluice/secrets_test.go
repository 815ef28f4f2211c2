package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// brokenWithSecrets is a configuration whose errors are on lines holding secrets.
func brokenWithSecrets(listen, admin, up string) string {
	return fmt.Sprintf(`server {
  listen = %q
}
admin {
  listen = %q
  token  = "adm1n-s3cret"
}
redis "r" {
  address  = "127.0.0.1:6379"
  password = ["redis-s3cret"]
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    request_set = { "X-Api-Key" = "k3y-s3cret", "Authorization" = "Bearer b34rer-s3cret", "X-N" = {} }
  }
  filter "jwt" {
    jwks_url = "ftp://idp:url-s3cret@idp.example/jwks?access_token=query-s3cret"
  }
  balancer { upstream = upstream.u }
}
`, listen, admin, up)
}

// TestDiagnosticsHideSecrets: validate, a failed reload's answer and its log line point at the
// lines in error without showing the secrets on them.
func TestDiagnosticsHideSecrets(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen, adminAddr := freePort(t), freePort(t)
	check := func(what, out string, wantErrors int) {
		t.Helper()
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s shows a secret:\n%s", what, out)
		}
		for _, want := range []string{":10:14: error:", ":17:", ":20:16: error:", "[redacted]", `"X-Api-Key" = "[redacted]"`, "ftp://[redacted]@idp.example/jwks?access_token=[redacted]"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", what, want, out)
			}
		}
	}
	path := writeConfig(t, brokenWithSecrets(listen, adminAddr, up))
	out, err := exec.Command(sluiceBin, "validate", path).CombinedOutput()
	if exitCode(err) != 1 {
		t.Fatalf("validate: exit %d, want 1:\n%s", exitCode(err), out)
	}
	check("validate", string(out), 3)

	good := gatewayConfig(listen, adminAddr, up, "A")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	_, logs := startSluice(t, path)
	if err := os.WriteFile(path, []byte(brokenWithSecrets(listen, adminAddr, up)), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+adminAddr+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 {
		t.Fatalf("POST /reload of a broken configuration: %d %s", resp.StatusCode, body)
	}
	var unescaped strings.Builder
	// The JSON answer escapes quotes; compare on the text as a client would print it.
	unescaped.WriteString(strings.NewReplacer(`\"`, `"`, `\n`, "\n").Replace(string(body)))
	check("the /reload answer", unescaped.String(), 3)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "configuration rejected") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	check("the log", strings.NewReplacer(`\"`, `"`, `\n`, "\n").Replace(logs.String()), 3)
}

// TestLogHidesURLCredentials: a JWKS endpoint that fails is logged without the credentials in
// its URL.
func TestLogHidesURLCredentials(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	idp := freePort(t) // nothing listens: the fetch fails and is logged
	path := writeConfig(t, fmt.Sprintf(`server {
  listen = %q
}
admin {
  listen = ""
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "jwt" {
    jwks_url = "http://idp:url-s3cret@%s/jwks?access_token=query-s3cret"
  }
  balancer { upstream = upstream.u }
}
`, freePort(t), up, idp))
	_, logs := startSluice(t, path)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "jwks") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, "access_token=[redacted]") {
		t.Errorf("no log line about the JWKS fetch with its URL redacted:\n%s", out)
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("the log shows a credential:\n%s", out)
	}
}
