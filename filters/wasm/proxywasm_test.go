package wasm

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestProxyWasmEdgeCases: each host function answers hostile input (pointers and sizes outside
// the guest's memory, malformed encodings) and calls in the wrong phase with the WasmResult the
// spec names, without trapping; the guest reports it as its local response's status (400 + it).
func TestProxyWasmEdgeCases(t *testing.T) {
	f, _ := newFilter(t, "pw_edge", func(c *Config) {
		raw := "xyz"
		c.ConfigRaw = &raw
	})
	if f.pw == nil {
		t.Fatal("the ABI was not detected as proxy-wasm")
	}
	for path, want := range map[string]int{
		"/a": 400 + pwInvalidMemory, // key out of bounds
		"/b": 400 + pwInvalidMemory, // huge value size
		"/c": 400 + pwInvalidMemory, // property path out of bounds
		"/d": 400 + pwBadArgument,   // response headers in the request phase
		"/e": 400 + pwBadArgument,   // response body in the request phase
		"/f": 400 + pwBadArgument,   // unknown stream type
		"/g": 400 + pwInvalidMemory, // out-pointer out of bounds
		"/h": 400 + pwSerialization, // malformed header pairs
		"/i": 400 + pwBadArgument,   // unknown upstream
		"/j": 400 + pwCasMismatch,   // stale compare-and-swap
		"/k": 400 + pwNotFound,      // unknown queue
		"/l": 400 + pwBadArgument,   // unknown metric type
		"/m": 400 + pwNotFound,      // unknown metric
		"/n": 400 + pwUnimplemented, // gRPC stub
		"/o": 400 + pwInvalidMemory, // pairs out-pointer out of bounds
		"/p": 400,                   // the status-99 local response was refused, the next one taken
		"/q": 400 + pwBadArgument,   // unknown effective context
		"/r": 400 + pwInvalidMemory, // log message out of bounds
		"/s": 400 + pwBadArgument,   // request headers from proxy_on_vm_start
		"/v": 400 + pwInvalidMemory, // log level out-pointer out of bounds
		"/w": 400 + pwSerialization, // malformed header pairs to set
		"/x": 400 + pwNotFound,      // enqueue to an unknown queue
		"/y": 400 + pwInvalidMemory, // buffer status out-pointer out of bounds
		"/G": 400 + pwInvalidMemory, // a 4 GiB body
		"/A": 400 + pwInvalidMemory, // the guest's allocator answers a pointer out of bounds
		"/t": 400,                   // no tick without a period
		"/z": 200,                   // passes to the backend
	} {
		c := do(t, f, "GET", path, "")
		if got := c.Response.StatusCode(); got != want {
			t.Errorf("%s: status %d, want %d (failure: %v)", path, got, want, c.Failure)
		}
	}
	if n := metricValue(f.m.traps); n != 0 {
		t.Errorf("%v traps, want none: hostile input is answered with a WasmResult", n)
	}
}

// TestProxyWasmRootContext: a guest refusing its configuration fails the load saying so; a
// tick's call for request headers gets BadArgument.
func TestProxyWasmRootContext(t *testing.T) {
	_, _, err := tryFilter(t, "pw_edge", false, func(c *Config) {
		raw := "refuse"
		c.ConfigRaw = &raw
	})
	if err == nil || !strings.Contains(err.Error(), "proxy_on_configure answered false") {
		t.Errorf("a refused configuration: %v", err)
	}
	f, _ := newFilter(t, "pw_edge", func(c *Config) {
		raw := "tick"
		c.ConfigRaw = &raw
		c.PoolMax = 1
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := do(t, f, "GET", "/t", "").Response.StatusCode()
		if got == 400+pwBadArgument {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tick's probe reports %d after 5s, want %d", got, 400+pwBadArgument)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProxyWasmIsolation: a proxy-wasm guest that traps, loops, grows its memory without end or
// recurses without end fails only its own request (per on_error); the next request is served.
func TestProxyWasmIsolation(t *testing.T) {
	for _, tc := range []struct {
		path   string
		status int
		skip   int
	}{
		{"/T", 500, 200},
		{"/L", 503, 200},
		{"/M", 500, 200},
		{"/R", 500, 200},
		{"/P", 500, 200}, // paused with nothing in flight: it could never resume
	} {
		for _, onError := range []string{"deny", "skip"} {
			f, logs := newFilter(t, "pw_edge", func(c *Config) {
				raw := "xyz"
				c.ConfigRaw = &raw
				c.Timeout = engine.Duration(100 * time.Millisecond)
				c.MemoryLimit = 1 << 20
				c.MaxCallDepth = 500
				c.OnError = onError
				c.PoolMax = 1
				c.PoolWait = engine.Duration(5 * time.Second)
			})
			want := tc.status
			if onError == "skip" {
				want = tc.skip
			}
			c := do(t, f, "GET", tc.path, "")
			if got := c.Response.StatusCode(); got != want {
				t.Errorf("%s on_error=%s: status %d, want %d", tc.path, onError, got, want)
			}
			if !strings.Contains(logs.String(), "wasm guest") {
				t.Errorf("%s: no log line says why the request failed:\n%s", tc.path, logs)
			}
			// The broken instance is replaced: the next request is served by a fresh one.
			if c := do(t, f, "GET", "/z", ""); c.Response.StatusCode() != 200 {
				t.Errorf("%s on_error=%s: the next request got %d, want 200", tc.path, onError, c.Response.StatusCode())
			}
		}
	}
}

// TestProxyWasmABIChoice: abi = "proxy-wasm" on an http-wasm module, and abi = "http-wasm" on a
// proxy-wasm one, are refused saying what the module is.
func TestProxyWasmABIChoice(t *testing.T) {
	_, _, err := tryFilter(t, "bench", false, func(c *Config) { c.ABI = abiProxyWasm })
	if err == nil || !strings.Contains(err.Error(), "it is an http-wasm module") {
		t.Errorf("proxy-wasm asked of an http-wasm module: %v", err)
	}
	_, _, err = tryFilter(t, "pw_edge", false, func(c *Config) { c.ABI = abiHTTPWasm })
	if err == nil || !strings.Contains(err.Error(), "proxy-wasm") {
		t.Errorf("http-wasm asked of a proxy-wasm module: %v", err)
	}
	_, _, err = tryFilter(t, "pw_edge", false, func(c *Config) { c.Isolation = isolationRequest })
	if err == nil || !strings.Contains(err.Error(), "not available for proxy-wasm") {
		t.Errorf(`isolation = "request" with a proxy-wasm module: %v`, err)
	}
}

// TestProxyWasmBenchGuest: the bench guest does its work (the bench measures something real).
func TestProxyWasmBenchGuest(t *testing.T) {
	f, _ := newFilter(t, "pw_bench", nil)
	c := do(t, f, "GET", "/x?y=1", "", "x-id", "7")
	if got := hdr(c, "x-httpwasm-next-header-x-wasm-0"); got != "1" {
		t.Errorf("upstream saw x-wasm %q, want 1", got)
	}
	if got := hdr(c, "x-filtered"); got != "yes" {
		t.Errorf("response x-filtered = %q, want yes", got)
	}
}

// TestProxyWasmAllocs: a request through a proxy-wasm filter doing the bench guest's work
// allocates nothing, as through an http-wasm one.
func TestProxyWasmAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f, _ := newFilter(t, "pw_bench", nil)
	p := pipelineFor(f)
	c := enginetest.NewCtx(t, "GET", "/items/42?full=1", "x-id", "abc")
	p.Serve(c)
	if allocs := testing.AllocsPerRun(2000, func() { p.Serve(c) }); allocs != 0 {
		t.Errorf("a request through the proxy-wasm filter allocates %v times, want 0", allocs)
	}
	if got := string(c.Response.Header.Peek("x-filtered")); got != "yes" {
		t.Errorf("the guest did not run: x-filtered = %q", got)
	}
}
