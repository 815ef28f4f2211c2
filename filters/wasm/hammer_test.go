package wasm

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// TestHammer sends 8 goroutines × 10k requests through one filter whose pool (4 instances) is
// smaller than the concurrency. The Go guest carries each request's x-req-id from
// handle_request to handle_response in a global, and its request context as req_ctx: any
// cross-request leakage (an instance shared by two requests, state left from the previous one)
// shows up as a wrong echo.
func TestHammer(t *testing.T) {
	const goroutines = 8
	perG := 10000
	if testing.Short() {
		perG = 1000
	}
	f, _ := newFilter(t, "goguest", func(c *Config) {
		c.PoolMin = 2
		c.PoolMax = 4
		c.PoolWait = engine.Duration(10 * time.Second)
	})
	p := engine.NewPipeline("hammer", engine.MatchConfig{}, "", []engine.Stage{{Kind: "wasm", Filter: f}},
		engine.TerminalFunc(func(c *engine.Ctx) {
			// The upstream reports what the guest told it.
			c.Response.Header.SetBytesV("x-upstream-saw", c.Request.Header.Peek("x-wasm-saw"))
		}))
	var failures atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var fc fasthttp.RequestCtx
			var req fasthttp.Request
			fc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000 + g}, nil)
			for i := range perG {
				fc.Request.Reset()
				fc.Response.Reset()
				id := strconv.Itoa(g*1_000_000 + i + 1)
				fc.Request.SetRequestURI("/hammer")
				fc.Request.Header.Set("x-test", "echo")
				fc.Request.Header.Set("x-req-id", id)
				c := engine.AcquireCtx(&fc)
				p.Serve(c)
				echo, saw := string(fc.Response.Header.Peek("x-echo")), string(fc.Response.Header.Peek("x-upstream-saw"))
				mismatch := fc.Response.Header.Peek("x-echo-ctx-mismatch")
				engine.ReleaseCtx(c)
				if echo != id || saw != id || len(mismatch) > 0 || fc.Response.StatusCode() != 200 {
					if failures.Add(1) <= 5 {
						t.Errorf("request %s: status %d, echo %q, upstream saw %q, ctx mismatch %q",
							id, fc.Response.StatusCode(), echo, saw, mismatch)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests saw another request's data", n, goroutines*perG)
	}
	if got := metricValue(f.m.instances); got > 4 {
		t.Errorf("%v instances, more than pool_max 4", got)
	}
	if got := metricValue(f.m.calls); got != float64(2*goroutines*perG) {
		t.Errorf("calls = %v, want %d", got, 2*goroutines*perG)
	}
}

// memoryInUse returns the Go heap in use and the process's resident set after a full GC.
func memoryInUse(t testing.TB) (heap, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory() // returns freed pages, so the resident set reflects what is in use
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		fields := strings.Fields(string(b))
		if len(fields) > 1 {
			pages, _ := strconv.ParseUint(fields[1], 10, 64)
			rss = pages * uint64(os.Getpagesize())
		}
	}
	return ms.HeapInuse, rss
}

// TestReloadDoesNotLeak builds and closes the filter 200 times the way a hot reload does (the
// new one is built while the old one still serves, then the old one is closed) and checks that
// the heap and the resident set stay flat.
func TestReloadDoesNotLeak(t *testing.T) {
	for _, tc := range []struct {
		guest   string
		reloads int
	}{{"bench", 200}, {"goguest", 10}} {
		t.Run(tc.guest, func(t *testing.T) {
			reload := func(n int, old *Filter) *Filter {
				for range n {
					nf, _, err := tryFilter(t, tc.guest, false, func(c *Config) { c.PoolMin = 2 })
					if err != nil {
						t.Fatal(err)
					}
					// Serve a request on the new one so instances did real work (on a Ctx
					// released at once, as the server does: a Ctx kept by the test would keep
					// its pipeline, and so the closed filter, reachable).
					serveOnce(nf)
					if old != nil {
						if err := old.Close(); err != nil {
							t.Fatal(err)
						}
					}
					old = nf
				}
				return old
			}
			cur := reload(tc.reloads/4, nil) // warm up caches and pools
			heap0, rss0 := memoryInUse(t)
			start := time.Now()
			cur = reload(tc.reloads, cur)
			took := time.Since(start)
			heap1, rss1 := memoryInUse(t)
			cur.Close()
			t.Logf("%d reloads in %v: heap %d -> %d KiB, rss %d -> %d KiB", tc.reloads, took, heap0>>10, heap1>>10, rss0>>10, rss1>>10)
			// One filter is alive at both measurements; allow noise, not growth per reload.
			const slack = 16 << 20
			if heap1 > heap0+slack {
				t.Errorf("heap grew from %d to %d KiB over %d reloads", heap0>>10, heap1>>10, tc.reloads)
			}
			// The race detector's shadow memory follows allocations, not what is live.
			if !raceEnabled && rss1 > rss0+2*slack {
				t.Errorf("resident set grew from %d to %d KiB over %d reloads", rss0>>10, rss1>>10, tc.reloads)
			}
		})
	}
}

// TestCompiledModuleShared checks that a module already compiled for a live filter is not
// compiled again (as on a reload), nor once its last user closed (the compiled-code cache keeps
// it), and that it is compiled again once the cache let it go (so a replaced module's code is
// freed). The module is generated large enough (3000
// functions) that compiling it clearly dominates instantiating it.
func TestCompiledModuleShared(t *testing.T) {
	var wat strings.Builder
	wat.WriteString("(module\n  (memory (export \"memory\") 1)\n")
	for i := range 3000 {
		fmt.Fprintf(&wat, "  (func $f%d (param $x i32) (result i32)", i)
		for j := range 12 {
			fmt.Fprintf(&wat, " (local.set $x (i32.add (i32.mul (local.get $x) (i32.const %d)) (i32.const %d)))", i+3, j)
		}
		wat.WriteString(" (local.get $x))\n")
	}
	wat.WriteString("  (func (export \"handle_request\") (result i64) (i64.extend_i32_u (call $f0 (i32.const 1))))\n")
	wat.WriteString("  (func (export \"handle_response\") (param i32 i32)))\n")
	dir := t.TempDir()
	src := filepath.Join(dir, "big.wat")
	if err := os.WriteFile(src, []byte(wat.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	module, err := buildWAT(src)
	if err != nil {
		t.Fatal(err)
	}
	timeBuild := func() (*Filter, time.Duration) {
		start := time.Now()
		f, _, err := tryFilter(t, "bench", true, func(c *Config) { c.Module = module })
		if err != nil {
			t.Fatal(err)
		}
		return f, time.Since(start)
	}
	first, cold := timeBuild()
	second, warm := timeBuild()
	first.Close()
	second.Close()
	compiled := metricValue(mCompiles)
	third, kept := timeBuild()
	third.Close()
	// Timing alone cannot tell a kept module on a loaded machine (decoding it again is part of
	// every build): the compilation counter can.
	if n := metricValue(mCompiles) - compiled; n != 0 {
		t.Errorf("after every user closed, building compiled %v modules: the cache did not keep the code", n)
	}
	defer codes.setLimit(DefaultCodeCacheBytes)
	codes.setLimit(0)
	fourth, again := timeBuild()
	fourth.Close()
	t.Logf("build: cold %v, while another filter holds the module %v, after all closed %v, after the cache let it go %v", cold, warm, kept, again)
	if warm*3 > cold {
		t.Errorf("a second filter on the same module took %v, the first %v: the compiled code was not shared", warm, cold)
	}
	if again*3 < cold {
		t.Errorf("after the cache let the module go, building took %v against %v cold: the code was kept", again, cold)
	}
}

// serveOnce runs one request through f on a pooled Ctx released right after.
func serveOnce(f *Filter) int {
	var fc fasthttp.RequestCtx
	var req fasthttp.Request
	req.SetRequestURI("/")
	fc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	c := engine.AcquireCtx(&fc)
	p := engine.NewPipeline("once", engine.MatchConfig{}, "", []engine.Stage{{Kind: "wasm", Filter: f}}, engine.TerminalFunc(backend))
	p.Serve(c)
	engine.ReleaseCtx(c)
	return fc.Response.StatusCode()
}
