package wasm

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func isolated(c *Config) { c.Isolation = isolationRequest; c.PoolMax = 1 }

// TestIsolationLeak: a token one request leaves in the guest's memory and globals is readable
// by the next request on the same instance by default, and not with isolation = "request".
func TestIsolationLeak(t *testing.T) {
	for _, mode := range []string{isolationInstance, isolationRequest} {
		t.Run(mode, func(t *testing.T) {
			f, _ := newFilter(t, "leak", func(c *Config) { c.Isolation = mode; c.PoolMax = 1 })
			leaked := 0
			for i := range 50 {
				c := do(t, f, "GET", "/", "", "x-token", "secret-"+strconv.Itoa(i))
				prev := hdr(c, "x-previous")
				if i > 0 && prev == "secret-"+strconv.Itoa(i-1) {
					leaked++
				} else if prev != "" {
					t.Fatalf("request %d saw x-previous %q", i, prev)
				}
			}
			switch {
			case mode == isolationInstance && leaked != 49:
				t.Errorf("default isolation: %d of 49 requests saw the previous token, want all (the documented behaviour)", leaked)
			case mode == isolationRequest && leaked != 0:
				t.Errorf("isolation = request: %d requests saw the previous token", leaked)
			}
		})
	}
}

// TestIsolationConcurrent: eight clients at once on four instances, some requests growing the
// memory (retiring their instance): no request ever sees another's token.
func TestIsolationConcurrent(t *testing.T) {
	f, _ := newFilter(t, "leak", func(c *Config) {
		c.Isolation = isolationRequest
		c.PoolMax = 4
		c.PoolWait = engine.Duration(5 * time.Second)
	})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				h := []string{"x-token", fmt.Sprintf("client-%d-%d", g, i)}
				if i%25 == 24 {
					h = append(h, "x-grow", "1")
				}
				c := do(t, f, "GET", "/", "", h...)
				if prev := hdr(c, "x-previous"); prev != "" || c.Response.StatusCode() != 200 {
					errs <- fmt.Sprintf("client %d request %d: status %d, x-previous %q", g, i, c.Response.StatusCode(), prev)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestIsolationGrow: a request that grows the memory retires its instance; the next request
// runs on a fresh one, from the snapshot.
func TestIsolationGrow(t *testing.T) {
	f, _ := newFilter(t, "leak", isolated)
	first := f.pool.get()
	f.pool.put(first)
	c := do(t, f, "GET", "/", "", "x-token", "a", "x-grow", "1")
	if c.Response.StatusCode() != 200 {
		t.Fatalf("growing request: status %d", c.Response.StatusCode())
	}
	f.bg.Wait() // the replacement instance
	for i := range 5 {
		c = do(t, f, "GET", "/", "", "x-token", "b"+strconv.Itoa(i))
		if got := hdr(c, "x-previous"); got != "" || c.Response.StatusCode() != 200 {
			t.Fatalf("request %d after the growth: status %d, x-previous %q", i, c.Response.StatusCode(), got)
		}
	}
	in := f.pool.get()
	if in == nil || in == first {
		t.Fatalf("the instance that grew its memory was not retired")
	}
	if size := in.mod.Memory().Size(); size != 8*pageSize {
		t.Errorf("new instance has %d bytes of memory, want its 8 pages", size)
	}
	f.pool.put(in)
}

// TestIsolationLargeWrite: a request that writes more pages than restore copies back has them
// dropped instead; either way the next request starts from the snapshot.
func TestIsolationLargeWrite(t *testing.T) {
	f, _ := newFilter(t, "leak", isolated)
	in := f.pool.get()
	f.pool.put(in)
	check := func(what string, wantDirty int) {
		t.Helper()
		if !bytes.Equal(in.iso.lm.mem[:in.iso.size], in.iso.snap) {
			t.Fatalf("%s: the memory differs from the snapshot", what)
		}
		if n, err := in.iso.dirtyPages(); err != nil || n > wantDirty {
			t.Errorf("%s: %d private pages (err %v), want at most %d", what, n, err, wantDirty)
		}
	}
	do(t, f, "GET", "/", "", "x-token", "small")
	check("after a small request", maxCopyBack)
	c := do(t, f, "GET", "/", "", "x-token", "large", "x-fill", "1")
	if c.Response.StatusCode() != 200 {
		t.Fatalf("large request: status %d", c.Response.StatusCode())
	}
	check("after a request writing 100 pages", 0)
	if got := hdr(do(t, f, "GET", "/", "", "x-token", "next"), "x-previous"); got != "" {
		t.Errorf("after the large request: x-previous %q", got)
	}
}

// TestIsolationLargeLimit: the snapshot file and mapping are memory_limit long (4 GiB here),
// without being charged or filled: only the pages in use cost memory.
func TestIsolationLargeLimit(t *testing.T) {
	f, _ := newFilter(t, "leak", func(c *Config) {
		c.Isolation = isolationRequest
		c.MemoryLimit = maxMemoryLimit
		c.PoolMin = 4
		c.PoolMax = 4
	})
	for i := range 8 {
		if got := hdr(do(t, f, "GET", "/", "", "x-token", strconv.Itoa(i)), "x-previous"); got != "" {
			t.Fatalf("request %d: x-previous %q", i, got)
		}
	}
}

// TestIsolationTablesRefused: a module that changes its table cannot be isolated.
func TestIsolationTablesRefused(t *testing.T) {
	_, _, err := tryFilter(t, "tables", false, isolated)
	if err == nil || !strings.Contains(err.Error(), "table.set") || !strings.Contains(err.Error(), "isolation") {
		t.Fatalf("building with isolation = request: err %v, want a refusal naming table.set", err)
	}
	f, _ := newFilter(t, "tables", nil) // the default mode runs it
	if c := do(t, f, "GET", "/", ""); c.Response.StatusCode() != 200 {
		t.Errorf("default isolation: status %d", c.Response.StatusCode())
	}
}

// TestIsolationGoGuest: a Go guest (its runtime, heap and stack pointer global) runs request
// after request from its snapshot: its request counter never goes past 1, and the other cases
// keep working.
func TestIsolationGoGuest(t *testing.T) {
	f, _ := newFilter(t, "goguest", isolated)
	for i := range 200 {
		c := do(t, f, "GET", "/", "", "x-test", "served")
		if got := string(c.Response.Body()); got != "1" {
			t.Fatalf("request %d: served = %q, want 1", i, got)
		}
		c = do(t, f, "GET", "/", "", "x-test", "echo", "x-req-id", strconv.Itoa(i))
		if got := hdr(c, "x-httpwasm-next-header-x-wasm-saw-0"); got != strconv.Itoa(i) {
			t.Fatalf("request %d: upstream saw x-wasm-saw %q", i, got)
		}
	}
	in := f.pool.get()
	if in == nil || in.iso == nil {
		t.Fatal("no isolated instance in the pool")
	}
	if !bytes.Equal(in.iso.lm.mem[:in.iso.size], in.iso.snap) {
		t.Error("after a reset the memory differs from the snapshot")
	}
	f.pool.put(in)
}

// TestIsolationValidation: the mode is checked with the other attributes.
func TestIsolationValidation(t *testing.T) {
	var c Config
	c.SetDefaults()
	c.Module = "x.wasm"
	c.Isolation = isolationRequest
	c.ReleaseBetweenPhases = true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "isolation: \"request\" cannot be combined with release_between_phases") {
		t.Errorf("request + release_between_phases: %v", err)
	}
	c.ReleaseBetweenPhases = false
	c.Isolation = "process"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `isolation: must be "instance" or "request"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

// TestIsolationAllocs: the reset adds no allocation to a request.
func TestIsolationAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f, _ := newFilter(t, "bench", isolated)
	p := pipelineFor(f)
	c := enginetest.NewCtx(t, "GET", "/items/42?full=1", "x-id", "abc")
	p.Serve(c)
	if allocs := testing.AllocsPerRun(2000, func() { p.Serve(c) }); allocs != 0 {
		t.Errorf("a request with isolation = request allocates %v times, want 0", allocs)
	}
	if got := string(c.Response.Header.Peek("x-filtered")); got != "yes" {
		t.Errorf("the guest did not run: x-filtered = %q", got)
	}
}

// BenchmarkIsolation measures isolation = "request" on the WAT bench guest and on the Go
// guest. "request" and "instance" are whole requests through a pipeline (the difference is
// what isolation costs, page faults on the snapshot included); "reset" times the reset alone
// (the pagemap read, the copy and the globals) after a handle_request, and reports the pages it
// wrote (pages/req: the private pages after it, which the reset copies back) and the reset's own
// time (reset-ns).
func BenchmarkIsolation(b *testing.B) {
	for _, g := range []struct {
		name    string
		headers []string
	}{
		{"bench", []string{"x-id", "abc"}},
		{"goguest", []string{"x-test", "echo", "x-req-id", "7"}},
	} {
		for _, mode := range []string{isolationInstance, isolationRequest} {
			b.Run(g.name+"/"+mode, func(b *testing.B) {
				f, _ := newFilter(b, g.name, func(c *Config) { c.Isolation = mode; c.PoolMax = 1 })
				p := pipelineFor(f)
				c := enginetest.NewCtx(b, "GET", "/items/42?full=1", g.headers...)
				p.Serve(c)
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					p.Serve(c)
				}
				cpu.report(b)
			})
		}
		b.Run(g.name+"/reset", func(b *testing.B) {
			f, _ := newFilter(b, g.name, isolated)
			in := f.pool.get()
			defer f.pool.put(in)
			c := enginetest.NewCtx(b, "GET", "/items/42?full=1", g.headers...)
			request := func() {
				in.begin(c)
				if err := in.call(in.req); err != nil {
					b.Fatal(err)
				}
				in.end()
			}
			request()
			in.iso.restore()
			request()
			pages, err := in.iso.dirtyPages()
			if err != nil {
				b.Fatal(err)
			}
			in.iso.restore()
			// CPU time of the benchmark's thread: wall-clock time on a shared machine counts
			// other work.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var reset time.Duration
			b.ReportAllocs()
			for b.Loop() {
				request()
				t0 := threadCPU()
				if !in.iso.restore() {
					b.Fatal("the request grew the memory")
				}
				reset += threadCPU() - t0
			}
			b.ReportMetric(float64(pages), "pages/req")
			b.ReportMetric(float64(reset.Nanoseconds())/float64(b.N), "reset-ns")
			b.ReportMetric(float64(in.iso.size)/4096, "used-pages")
		})
	}
}
