package wasm_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// tckBackend answers like the http-wasm TCK's backend handler: it reports the method, the
// request URI and every request header it received as response headers.
// For the "trailers" case it answers with trailers (sent chunked after the body).
func tckBackend(c *fasthttp.RequestCtx) {
	h := &c.Response.Header
	if string(c.Request.Header.Peek("x-httpwasm-tck-testid")) == "trailers" {
		_ = h.SetTrailer("grpc-status, x-drop-me")
		h.Set("grpc-status", "0")
		h.Set("x-drop-me", "1")
		c.SetBodyString("body with trailers")
		return
	}
	h.Set("x-httpwasm-next-method", string(c.Method()))
	h.Set("x-httpwasm-next-uri", string(c.Request.Header.RequestURI()))
	seen := map[string]int{}
	for k, v := range c.Request.Header.All() {
		name := strings.ToLower(string(k))
		h.Add(fmt.Sprintf("x-httpwasm-next-header-%s-%d", name, seen[name]), string(v))
		seen[name]++
	}
}

func gatewayWith(t *testing.T, module, filterBody string, upstream fasthttp.RequestHandler) *gatewaytest.Gateway {
	t.Helper()
	up := gatewaytest.Upstream(t, upstream)
	// h2c on: the same gateway serves the HTTP/2 runs of the TCK.
	return gatewaytest.Start(t, fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "u" {
  target {
    address = %q
  }
}
pipeline "all" {
  match {
    path_prefix = "/"
  }
  filter "wasm" {
    name   = "tck"
    module = %q
%s
  }
  balancer {
    upstream = upstream.u
  }
}
`, up, module, filterBody))
}

// TestTCK reproduces the checks of the public http-wasm TCK (github.com/http-wasm/http-wasm-host-go,
// tck/run.go) against a real gateway: a net/http client, the TCK-style guest, a TCK-style
// backend behind the balancer.
// It runs the guest with the default limits and with an explicit timeout; and both module styles:
// the Go reactor (_initialize) and a C command (_start, as TinyGo and wasi-libc build them) that
// asks for the trailers feature and also answers a trailers case.
func TestTCK(t *testing.T) {
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	for _, guest := range []string{"goguest", "tck_command"} {
		t.Run(guest+"/plain", func(t *testing.T) { testTCK(t, guest, "") })
		t.Run(guest+"/timeout", func(t *testing.T) { testTCK(t, guest, `    timeout = "1s"`) })
		// The same checks with the client speaking HTTP/2 (h2c): the guest sees the same
		// request, and get_protocol_version says HTTP/2.0.
		t.Run(guest+"/h2c", func(t *testing.T) {
			testTCKWith(t, guest, "", &http.Client{Transport: &http.Transport{Protocols: &h2c}})
		})
	}
}

func testTCK(t *testing.T, guest, filterBody string) {
	testTCKWith(t, guest, filterBody, &http.Client{})
}

// testTCKWith runs the TCK checks with client (HTTP/1.1 or HTTP/2).
func testTCKWith(t *testing.T, guest, filterBody string, client *http.Client) {
	gw := gatewayWith(t, wasm.Guest(t, guest), filterBody, tckBackend)

	type tc struct {
		id     string
		method string
		path   string
		body   string
		header http.Header
		check  func(t *testing.T, resp *http.Response, body string)
	}
	nextHeader := func(name, want string) func(*testing.T, *http.Response, string) {
		return func(t *testing.T, resp *http.Response, _ string) {
			if have := resp.Header.Get(name); have != want {
				t.Errorf("%s = %q, want %q", name, have, want)
			}
		}
	}
	cases := []tc{
		{id: "get_protocol_version", check: func(t *testing.T, resp *http.Response, body string) {
			if body != resp.Proto {
				t.Errorf("protocol version %q, want %q", body, resp.Proto)
			}
		}},
		{id: "set_method", check: nextHeader("x-httpwasm-next-method", "POST")},
		{id: "get_header_names/request", header: http.Header{"A-Header": {"value1"}, "B-Header": {"2"}}},
		{id: "get_source_addr"},
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"} {
		cases = append(cases, tc{id: "get_method/" + m, method: m})
	}
	for id, uri := range map[string]string{
		"simple": "/simple", "simple/escaping": "/simple%26clean",
		"query": "/animal?name=panda", "query/escaping": "/disney?name=chip%26dale",
	} {
		cases = append(cases, tc{id: "get_uri/" + id, path: uri})
		cases = append(cases, tc{id: "set_uri/" + id, check: nextHeader("x-httpwasm-next-uri", uri)})
	}
	for id, vals := range map[string][]string{
		"lowercase-key": {"single-header", "value"}, "mixedcase-key": {"Single-Header", "value"},
		"not-exists": nil, "multiple-values": {"multi-header", "value1", "multi-header", "value2"},
	} {
		h := http.Header{}
		for i := 0; i+1 < len(vals); i += 2 {
			h.Add(vals[i], vals[i+1])
		}
		cases = append(cases, tc{id: "get_header_values/request/" + id, header: h})
	}
	existing := http.Header{"Existing-Header": {"bear"}}
	cases = append(cases,
		tc{id: "set_header_value/request/new", header: existing, check: nextHeader("x-httpwasm-next-header-new-header-0", "value")},
		tc{id: "set_header_value/request/existing", header: existing, check: nextHeader("x-httpwasm-next-header-existing-header-0", "value")},
		tc{id: "add_header_value/request/new", header: existing, check: nextHeader("x-httpwasm-next-header-new-header-0", "value")},
		tc{id: "add_header_value/request/existing", header: existing, check: func(t *testing.T, resp *http.Response, body string) {
			nextHeader("x-httpwasm-next-header-existing-header-0", "bear")(t, resp, body)
			nextHeader("x-httpwasm-next-header-existing-header-1", "value")(t, resp, body)
		}},
		tc{id: "remove_header/request/new", header: existing, check: nextHeader("x-httpwasm-next-header-existing-header-0", "bear")},
		tc{id: "remove_header/request/existing", header: existing, check: nextHeader("x-httpwasm-next-header-existing-header-0", "")},
	)
	for id, size := range map[string]int{"empty": 0, "small": 5, "medium": 2048, "large": 4096, "xlarge": 5000} {
		cases = append(cases, tc{id: "read_body/request/" + id, method: "POST", body: strings.Repeat("a", size)})
	}

	if guest == "tck_command" {
		cases = append(cases, tc{id: "trailers", check: func(t *testing.T, resp *http.Response, body string) {
			if body != "body with trailers" {
				t.Errorf("body %q", body)
			}
			// The guest saw the upstream's trailer, added one and removed one; the client gets
			// the upstream's other trailer and the guest's.
			nextHeader("x-upstream-grpc-status", "0")(t, resp, body)
			nextHeader("x-trailer-count", "2")(t, resp, body)
			nextHeader("x-features", "all")(t, resp, body)
			want := http.Header{"Grpc-Status": {"0"}, "X-Wasm-Trailer": {"done"}}
			if !reflect.DeepEqual(resp.Trailer, want) {
				t.Errorf("trailers %v, want %v", resp.Trailer, want)
			}
		}})
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = "GET"
			}
			path := c.path
			if path == "" {
				path = "/" + strings.SplitN(c.id, "/", 2)[0]
			}
			req, err := http.NewRequest(method, gw.URL+path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range c.header {
				req.Header[k] = vs
			}
			req.Header.Set("x-httpwasm-tck-testid", c.id)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.Header.Get("x-httpwasm-tck-handled") != "1" {
				t.Error("x-httpwasm-tck-handled header is missing")
			}
			if resp.StatusCode == http.StatusInternalServerError {
				t.Errorf("assertion failed: %q", resp.Header.Get("x-httpwasm-tck-failed"))
			}
			if c.check != nil {
				c.check(t, resp, string(b))
			}
		})
	}
}

// TestIsolationEndToEnd runs misbehaving guests behind a real gateway: each bad request fails
// alone and the gateway keeps serving.
func TestIsolationEndToEnd(t *testing.T) {
	gw := gatewayWith(t, wasm.Guest(t, "faults"), `
    memory_limit = "1MiB"
    timeout      = "50ms"
    pool_max     = 2
    pool_wait    = "2s"`, func(c *fasthttp.RequestCtx) { c.SetBodyString("fine") })
	cl := gatewaytest.Client()
	get := func(mode string) (int, string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(gw.URL + "/")
		if mode != "" {
			req.Header.Set("x-mode", mode)
		}
		if err := cl.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode(), string(resp.Body())
	}
	for _, tc := range []struct {
		mode   string
		status int
	}{{"u", 500}, {"o", 500}, {"h", 500}, {"g", 500}, {"l", 503}} {
		if st, _ := get(tc.mode); st != tc.status {
			t.Errorf("mode %s: status %d, want %d", tc.mode, st, tc.status)
		}
		if st, body := get(""); st != 200 || body != "fine" {
			t.Errorf("after mode %s the gateway answered %d %q", tc.mode, st, body)
		}
	}
}

// TestValidateDiagnostics checks that a module lacking what the ABI needs is a diagnostic at
// validate time, naming the module and the missing piece.
func TestValidateDiagnostics(t *testing.T) {
	dir := t.TempDir()
	bin, err := os.ReadFile(wasm.Guest(t, "bad_imports"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.wasm"), bin, 0o644); err != nil {
		t.Fatal(err)
	}
	src := `
upstream "u" {
  target {
    address = "127.0.0.1:1"
  }
}
pipeline "p" {
  match {
    path_prefix = "/"
  }
  filter "wasm" {
    name   = "bad"
    module = "bad.wasm"
    config = { header = "X-Country" }
  }
  balancer {
    upstream = upstream.u
  }
}
`
	cfg, diags := hcl.Load(filepath.Join(dir, "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	gw, diags := cfg.Build(engine.BuildOptions{Validating: true})
	if gw != nil {
		gw.Close()
	}
	if !diags.HasErrors() {
		t.Fatal("a module importing env.abort built without a diagnostic")
	}
	text := diags.Error()
	for _, want := range []string{"bad.wasm", "env.abort", "http_handler.get_headers"} {
		if !strings.Contains(text, want) {
			t.Errorf("diagnostics lack %q: %s", want, text)
		}
	}
}

// TestBurstOnEmptyPoolWithTimeout sends 48 requests at once to a Go guest with a per-call
// timeout and only one warm instance: the pool grows to serve them (instantiations bounded to
// the core count), and none fails its start deadline or the request.
func TestBurstOnEmptyPoolWithTimeout(t *testing.T) {
	gw := gatewayWith(t, wasm.Guest(t, "goguest"), `    timeout   = "1s"
    pool_min  = 1
    pool_max  = 48
    pool_wait = "10s"`, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	const n = 48
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(gw.URL + "/burst")
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Sprintf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request failed: %s", e)
	}
	if strings.Contains(gw.Logs(), "did not finish within") {
		t.Errorf("an instance missed its start deadline:\n%s", gw.Logs())
	}
}
