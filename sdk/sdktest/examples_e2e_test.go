package sdktest_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-gateway/sluice/sdk/sdktest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// seen is what the upstream received, echoed back as the response body.
type seen struct {
	Headers map[string]string `json:"headers"` // lower-case names, first value
	Body    string            `json:"body"`
	Hits    int               `json:"hits"`
}

// echoUpstream starts an upstream that answers 200 with what it received, plus headers a
// response-side filter can act on.
func echoUpstream(t *testing.T) string {
	var mu sync.Mutex
	hits := 0
	return gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		mu.Lock()
		hits++
		s := seen{Headers: map[string]string{}, Body: string(c.Request.Body()), Hits: hits}
		mu.Unlock()
		for k, v := range c.Request.Header.All() {
			name := strings.ToLower(string(k))
			if _, dup := s.Headers[name]; !dup {
				s.Headers[name] = string(v)
			}
		}
		c.Response.Header.Set("X-Powered-By", "PHP/5.6")
		c.Response.Header.Set("Referrer-Policy", "origin")
		c.SetContentType("application/json")
		_ = json.NewEncoder(c).Encode(s)
	})
}

type reply struct {
	status  int
	headers map[string][]string
	body    string
	seen    *seen // nil when the upstream was not reached
}

func (r reply) header(name string) string {
	if v := r.headers[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func do(t *testing.T, method, url, body string, headers ...string) reply {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	if body != "" {
		req.SetBodyString(body)
	}
	if err := gatewaytest.Client().Do(req, resp); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	r := reply{status: resp.StatusCode(), headers: map[string][]string{}, body: string(resp.Body())}
	for k, v := range resp.Header.All() {
		name := strings.ToLower(string(k))
		r.headers[name] = append(r.headers[name], string(v))
	}
	if strings.HasPrefix(r.header("content-type"), "application/json") {
		var s seen
		if err := json.Unmarshal(resp.Body(), &s); err == nil && s.Hits > 0 {
			r.seen = &s
		}
	}
	return r
}

// pipelines builds a config with one upstream and one pipeline per entry, matched on "/<name>/".
func pipelines(upstream string, entries ...[2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream \"echo\" {\n  target { address = %q }\n}\n", upstream)
	for _, e := range entries {
		fmt.Fprintf(&b, "pipeline %q {\n  match { path_prefix = \"/%s/\" }\n%s\n  balancer { upstream = upstream.echo }\n}\n", e[0], e[0], e[1])
	}
	return b.String()
}

func wasmFilter(module, config string) string {
	return fmt.Sprintf("  filter \"wasm\" {\n    module = %q\n    config = %s\n    pool_max = 4\n  }", module, config)
}

// wasmFilterWithTimeout is wasmFilter with a timeout, which runs the module rewritten with the
// interrupt checks.
func wasmFilterWithTimeout(module, config string) string {
	return strings.Replace(wasmFilter(module, config), "pool_max = 4", "pool_max = 4\n    timeout = \"1s\"", 1)
}

// referenceBuilds are the builds of the reference filter (apikey): the same source behaviour in
// every SDK language, C both freestanding and against wasi-libc.
var referenceBuilds = []struct{ name, lang, file string }{
	{"go", "go", "apikey"},
	{"rust", "rust", "apikey"},
	{"c", "c", "apikey"},
	{"c-wasi", "c", "apikey-wasi"},
	{"assemblyscript", "assemblyscript", "apikey"},
}

const apikeyConfig = `{ header = "X-API-Key", keys = { alpha = "team-a", beta = "team-b" } }`

// TestReferenceFilter is the shared behaviour test: the same requests, the same expected results,
// against every language's build of the reference filter, each in a real gateway pipeline.
func TestReferenceFilter(t *testing.T) {
	// Each build runs as it is and, with a timeout, rewritten with the interrupt checks: the
	// rewrite must handle what every SDK's toolchain emits.
	var entries [][2]string
	var names []string
	for _, b := range referenceBuilds {
		module := sdktest.Wasm(t, b.lang, b.file)
		entries = append(entries, [2]string{b.name, wasmFilter(module, apikeyConfig)},
			[2]string{b.name + "-timeout", wasmFilterWithTimeout(module, apikeyConfig)})
		names = append(names, b.name, b.name+"-timeout")
	}
	gw := gatewaytest.Start(t, pipelines(echoUpstream(t), entries...))

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			url := gw.URL + "/" + name + "/orders?id=7"
			for _, tc := range []struct {
				name    string
				headers []string
			}{
				{"missing key", nil},
				{"wrong key", []string{"X-API-Key", "gamma"}},
				{"key of another case", []string{"X-API-Key", "ALPHA"}},
			} {
				r := do(t, "GET", url, "", tc.headers...)
				if r.status != 401 || r.body != "invalid API key\n" || r.seen != nil {
					t.Errorf("%s: status %d body %q upstream reached %v; want 401 local reply", tc.name, r.status, r.body, r.seen != nil)
				}
				if r.header("content-type") != "text/plain; charset=utf-8" || r.header("www-authenticate") != "ApiKey" {
					t.Errorf("%s: headers %v", tc.name, r.headers)
				}
			}
			for key, consumer := range map[string]string{"alpha": "team-a", "beta": "team-b"} {
				r := do(t, "GET", url, "", "x-api-key", key)
				if r.status != 200 || r.seen == nil {
					t.Fatalf("key %s: status %d body %q, want the upstream's 200", key, r.status, r.body)
				}
				if got := r.seen.Headers["x-consumer"]; got != consumer {
					t.Errorf("key %s: upstream saw x-consumer %q, want %q", key, got, consumer)
				}
				if _, leaked := r.seen.Headers["x-api-key"]; leaked {
					t.Errorf("key %s: the API key reached the upstream", key)
				}
				// Set in handle_response from the request context: proves req_ctx made the trip.
				if got := r.header("x-consumer"); got != consumer {
					t.Errorf("key %s: response x-consumer %q, want %q", key, got, consumer)
				}
			}
		})
	}
}

// bucket is the examples' FNV-1a split of a client IP into 0..99.
func bucket(ip string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(ip); i++ {
		h ^= uint32(ip[i])
		h *= 16777619
	}
	return h % 100
}

func TestABRouter(t *testing.T) {
	up := echoUpstream(t)
	var entries [][2]string
	langs := []string{"go", "assemblyscript"}
	for _, lang := range langs {
		mod := sdktest.Wasm(t, lang, "abrouter")
		entries = append(entries,
			[2]string{lang + "-all-b", wasmFilter(mod, `{ header = "x-variant", cookie = "ab", percent_b = 100 }`)},
			[2]string{lang + "-none-b", wasmFilter(mod, `{ percent_b = 0 }`)},
			[2]string{lang + "-split", wasmFilter(mod, `{ percent_b = 37 }`)})
	}
	gw := gatewaytest.Start(t, pipelines(up, entries...))
	wantSplit := "a"
	if bucket("127.0.0.1") < 37 {
		wantSplit = "b"
	}
	for _, lang := range langs {
		t.Run(lang, func(t *testing.T) {
			for _, tc := range []struct {
				pipeline, cookie, variant, setCookie string
			}{
				{"all-b", "", "b", "ab=b; Path=/; Max-Age=2592000; SameSite=Lax"},
				{"none-b", "", "a", "ab=a; Path=/; Max-Age=2592000; SameSite=Lax"},
				{"split", "", wantSplit, "ab=" + wantSplit + "; Path=/; Max-Age=2592000; SameSite=Lax"},
				{"all-b", "session=1; ab=a", "a", ""}, // sticky: the cookie wins over the split
				{"none-b", "ab=b", "b", ""},
			} {
				var h []string
				if tc.cookie != "" {
					h = []string{"Cookie", tc.cookie}
				}
				r := do(t, "GET", gw.URL+"/"+lang+"-"+tc.pipeline+"/", "", h...)
				if r.seen == nil {
					t.Fatalf("%s: status %d body %q", tc.pipeline, r.status, r.body)
				}
				if got := r.seen.Headers["x-variant"]; got != tc.variant {
					t.Errorf("%s cookie %q: upstream saw x-variant %q, want %q", tc.pipeline, tc.cookie, got, tc.variant)
				}
				if got := r.header("set-cookie"); got != tc.setCookie {
					t.Errorf("%s cookie %q: set-cookie %q, want %q", tc.pipeline, tc.cookie, got, tc.setCookie)
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	up := echoUpstream(t)
	cfg := `{ fields = ["password", "card_number"], mask = "[redacted]" }`
	langs := []string{"go", "rust"}
	var entries [][2]string
	for _, lang := range langs {
		entries = append(entries, [2]string{lang, wasmFilter(sdktest.Wasm(t, lang, "redact"), cfg)})
	}
	gw := gatewaytest.Start(t, pipelines(up, entries...))
	in := `{"user":"ann","password":"hunter2","payment":{"card_number":4111111111111111,"exp":"12/29"}}`
	want := `{"user":"ann","password":"[redacted]","payment":{"card_number":"[redacted]","exp":"12/29"}}`
	for _, lang := range langs {
		t.Run(lang, func(t *testing.T) {
			r := do(t, "POST", gw.URL+"/"+lang+"/signup", in, "Content-Type", "application/json")
			if r.seen == nil {
				t.Fatalf("status %d body %q", r.status, r.body)
			}
			if r.seen.Body != want {
				t.Errorf("upstream body\n got %s\nwant %s", r.seen.Body, want)
			}
			if r.seen.Headers["content-length"] != fmt.Sprint(len(want)) || r.seen.Headers["x-redacted"] != "2" {
				t.Errorf("upstream headers: content-length %q x-redacted %q", r.seen.Headers["content-length"], r.seen.Headers["x-redacted"])
			}
			r = do(t, "POST", gw.URL+"/"+lang+"/signup", in, "Content-Type", "text/plain")
			if r.seen == nil || r.seen.Body != in || r.seen.Headers["x-redacted"] != "" {
				t.Errorf("a non-JSON body was changed: %+v", r.seen)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	up := echoUpstream(t)
	gw := gatewaytest.Start(t, pipelines(up,
		[2]string{"c", wasmFilter(sdktest.Wasm(t, "c", "secheaders"), `{}`)},
		[2]string{"c-config", wasmFilter(sdktest.Wasm(t, "c", "secheaders"), `{ set = { "x-frame-options" = "SAMEORIGIN" }, remove = ["referrer-policy"] }`)},
		[2]string{"wat", wasmFilter(sdktest.Wasm(t, "wat", "secheaders"), `{}`)},
	))
	for _, tc := range []struct {
		pipeline string
		want     map[string]string // "" means absent
	}{
		// An empty config object: the defaults apply.
		{"c", map[string]string{"x-powered-by": "", "x-content-type-options": "nosniff",
			"strict-transport-security": "max-age=63072000; includeSubDomains", "referrer-policy": "origin"}},
		{"c-config", map[string]string{"x-powered-by": "PHP/5.6", "x-frame-options": "SAMEORIGIN", "referrer-policy": "",
			"x-content-type-options": ""}},
		{"wat", map[string]string{"x-powered-by": "", "x-content-type-options": "nosniff", "x-frame-options": "DENY",
			"referrer-policy": "origin"}},
	} {
		t.Run(tc.pipeline, func(t *testing.T) {
			r := do(t, "GET", gw.URL+"/"+tc.pipeline+"/", "")
			if r.status != 200 || r.seen == nil {
				t.Fatalf("status %d body %q", r.status, r.body)
			}
			for name, want := range tc.want {
				if got := r.header(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		})
	}
}
