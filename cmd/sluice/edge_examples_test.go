package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
	"github.com/valyala/fasthttp"
)

// TestEdgeExamplesValidate: examples/cors and examples/api-keys pass `sluice validate` as they
// are (what their run.sh serves).
func TestEdgeExamplesValidate(t *testing.T) {
	for _, ex := range []string{"cors", "api-keys"} {
		out, err := exec.Command(sluiceBin, "validate", "-c", "../../examples/"+ex+"/gateway.hcl").CombinedOutput()
		if err != nil {
			t.Errorf("sluice validate on examples/%s: %v\n%s", ex, err, out)
		}
	}
}

// example reads an example's file, failing t.
func example(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replaceAll applies the replacements and fails t when one no longer matches the example.
func replaceAll(t *testing.T, src string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(src, pairs[i]) {
			t.Fatalf("the example changed: %q is gone; update this test", pairs[i])
		}
		src = strings.ReplaceAll(src, pairs[i], pairs[i+1])
	}
	return src
}

func doReq(t *testing.T, method, url string, headers ...string) *fasthttp.Response {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), new(fasthttp.Response)
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if err := gatewaytest.Client().Do(req, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestAPIKeysExampleServes serves examples/api-keys (its upstream and log moved) and walks its
// README: keys, the per-consumer budget shared by a consumer's two keys, the delete rule.
func TestAPIKeysExampleServes(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "api"}).Handle)
	src := replaceAll(t, example(t, "api-keys/gateway.hcl"),
		`"127.0.0.1:9101"`, fmt.Sprintf("%q", up),
		`format          = "text"`, `format          = "text"`+"\n    output = \"access.log\"")
	dir := t.TempDir()
	g := gatewaytest.StartWith(t, src, gatewaytest.Options{Dir: dir, Files: map[string][]byte{"keys.txt": []byte(example(t, "api-keys/keys.txt"))}})
	const (
		mobile  = "demo-mobile-4f1c2a9be07d4a3c9d55e1f0a7b3c812"
		mobile2 = "demo-mobile-next-0b6e1d2f3a4c5b6d7e8f9a0b"
		partner = "demo-partner-8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"
	)
	if r := doReq(t, "GET", g.URL+"/items"); r.StatusCode() != 401 || string(r.Header.Peek("WWW-Authenticate")) != `APIKey realm="api"` {
		t.Errorf("no key: %d", r.StatusCode())
	}
	if r := doReq(t, "GET", g.URL+"/items", "X-API-Key", "guess"); r.StatusCode() != 401 {
		t.Errorf("a guessed key: %d", r.StatusCode())
	}
	var codes []int
	for i := range 7 {
		key := mobile
		if i >= 3 {
			key = mobile2
		}
		r := doReq(t, "GET", g.URL+"/items", "X-API-Key", key)
		codes = append(codes, r.StatusCode())
		if r.StatusCode() == 200 && strings.Contains(string(r.Body()), key) {
			t.Errorf("the upstream saw the key: %s", r.Body())
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 429 429]" {
		t.Errorf("mobile-app's two keys: %v, want five admitted then 429", codes)
	}
	if r := doReq(t, "GET", g.URL+"/items?api_key="+partner); r.StatusCode() != 200 || strings.Contains(string(r.Body()), partner) {
		t.Errorf("partner by query: %d %s", r.StatusCode(), r.Body())
	}
	if r := doReq(t, "DELETE", g.URL+"/items/1", "X-API-Key", partner); r.StatusCode() != 200 {
		t.Errorf("partner DELETE: %d", r.StatusCode())
	}
	if r := doReq(t, "DELETE", g.URL+"/items/1", "X-API-Key", mobile); r.StatusCode() != 403 {
		t.Errorf("mobile DELETE: %d", r.StatusCode())
	}
}

// TestCORSExampleServes serves examples/cors (its listeners on free ports, its upstream moved):
// the app's page on one listener, a preflight answered on the other, a refused one.
func TestCORSExampleServes(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "api"}).Handle)
	src := replaceAll(t, example(t, "cors/gateway.hcl"),
		`"127.0.0.1:9101"`, fmt.Sprintf("%q", up),
		`address = "127.0.0.1:8080"`, `address = "127.0.0.1:0"`,
		`address = "127.0.0.1:8081"`, `address = "127.0.0.1:0"`,
		`format = "text"`, `format = "text"`+"\n    output = \"access.log\"")
	g := gatewaytest.StartWith(t, src, gatewaytest.Options{Files: map[string][]byte{"app.html": []byte(example(t, "cors/app.html"))}})
	app, api := "http://"+g.Addrs["app"], "http://"+g.Addrs["api"]
	if r := doReq(t, "GET", app+"/"); r.StatusCode() != 200 || !strings.Contains(string(r.Body()), "fetch(") {
		t.Errorf("the app's page: %d", r.StatusCode())
	}
	r := doReq(t, "OPTIONS", api+"/api/items/1", "Origin", "http://127.0.0.1:8081", "Access-Control-Request-Method", "PUT",
		"Access-Control-Request-Headers", "content-type, x-request-id")
	if r.StatusCode() != 204 || string(r.Header.Peek("Access-Control-Allow-Origin")) != "http://127.0.0.1:8081" ||
		string(r.Header.Peek("Access-Control-Allow-Credentials")) != "true" {
		t.Errorf("allowed preflight: %d %s", r.StatusCode(), r.Header.String())
	}
	for _, h := range [][]string{
		{"Origin", "http://evil.example", "Access-Control-Request-Method", "PUT"},
		{"Origin", "http://127.0.0.1:8081", "Access-Control-Request-Method", "PATCH"},
	} {
		if r := doReq(t, "OPTIONS", api+"/api/items/1", h...); r.StatusCode() != 403 || r.Header.Peek("Access-Control-Allow-Origin") != nil {
			t.Errorf("%v: %d %s", h, r.StatusCode(), r.Header.String())
		}
	}
	r = doReq(t, "PUT", api+"/api/items/1", "Origin", "http://localhost:8081")
	if r.StatusCode() != 200 || string(r.Header.Peek("Access-Control-Allow-Origin")) != "http://localhost:8081" ||
		string(r.Header.Peek("Access-Control-Expose-Headers")) != "X-Upstream" || string(r.Header.Peek("Vary")) != "Origin" {
		t.Errorf("actual request: %d %s", r.StatusCode(), r.Header.String())
	}
}

// TestCORSExampleInBrowser loads the CORS example's page in headless Chromium: the page's PUT
// (a preflighted, credentialed request) succeeds and its PATCH fails at the preflight, as the
// README says. The listeners take free ports; the page and the allowed origins are then rewritten
// for them and reloaded.
func TestCORSExampleInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install the Debian package chromium (.ci/run does)")
	}
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "api"}).Handle)
	orig := example(t, "cors/gateway.hcl")
	moved := func(app string) string {
		return replaceAll(t, orig,
			`"127.0.0.1:9101"`, fmt.Sprintf("%q", up),
			`address = "127.0.0.1:8080"`, `address = "127.0.0.1:0"`,
			`address = "127.0.0.1:8081"`, `address = "127.0.0.1:0"`,
			`"http://127.0.0.1:8081"`, fmt.Sprintf("%q", "http://"+app),
			`format = "text"`, `format = "text"`+"\n    output = \"access.log\"")
	}
	page := example(t, "cors/app.html")
	dir := t.TempDir()
	g := gatewaytest.StartWith(t, moved("127.0.0.1:8081"), gatewaytest.Options{Dir: dir, Files: map[string][]byte{"app.html": []byte(page)}})
	app, api := g.Addrs["app"], g.Addrs["api"]
	if err := os.WriteFile(dir+"/app.html", []byte(replaceAll(t, page, "http://127.0.0.1:8080", "http://"+api)), 0o644); err != nil {
		t.Fatal(err)
	}
	<-g.Reload(t, moved(app))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", "http://"+app+"/")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	dom := string(out)
	if !strings.Contains(dom, "PUT allowed: 200, X-Upstream: api") || !strings.Contains(dom, "PATCH refused by the preflight") {
		t.Errorf("the page did not get the expected answers:\n%s", dom)
	}
	g.Stop(t)
	logb, _ := os.ReadFile(dir + "/access.log")
	logs := string(logb)
	if !strings.Contains(logs, "method=OPTIONS") || !strings.Contains(logs, "status=403") || strings.Contains(logs, "method=PATCH") {
		t.Errorf("access log: a preflight answered, one refused, and no PATCH sent, want; got\n%s", logs)
	}
}
