package wasm

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// pipelineFor builds a pipeline of the given filters ending in a small fixed upstream reply.
func pipelineFor(filters ...engine.Filter) *engine.Pipeline {
	stages := make([]engine.Stage, len(filters))
	for i, f := range filters {
		stages[i] = engine.Stage{Kind: "wasm", Filter: f}
	}
	return engine.NewPipeline("bench", engine.MatchConfig{}, "", stages, engine.TerminalFunc(func(c *engine.Ctx) {
		c.Response.SetStatusCode(fasthttp.StatusOK)
		c.Response.SetBodyString("ok")
	}))
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f, _ := newFilter(t, "bench", nil)
	p := pipelineFor(f)
	c := enginetest.NewCtx(t, "GET", "/items/42?full=1", "x-id", "abc")
	p.Serve(c) // grows the Ctx's key slots once, as a pooled Ctx would have
	allocs := testing.AllocsPerRun(2000, func() { p.Serve(c) })
	if allocs != 0 {
		t.Errorf("a request through the wasm filter allocates %v times, want 0", allocs)
	}
	if got := string(c.Response.Header.Peek("x-filtered")); got != "yes" {
		t.Errorf("the guest did not run: x-filtered = %q", got)
	}
}

func TestReleaseBetweenPhasesAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f, _ := newFilter(t, "bench", func(c *Config) { c.ReleaseBetweenPhases = true })
	p := pipelineFor(f)
	c := enginetest.NewCtx(t, "GET", "/items/42?full=1", "x-id", "abc")
	p.Serve(c)
	allocs := testing.AllocsPerRun(2000, func() { p.Serve(c) })
	if allocs != 0 {
		t.Errorf("a request through a wasm filter that releases its instance between phases allocates %v times, want 0", allocs)
	}
	if got := string(c.Response.Header.Peek("x-filtered")); got != "yes" {
		t.Errorf("handle_response did not run: x-filtered = %q", got)
	}
}

func TestTimeoutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f, _ := newFilter(t, "bench", func(c *Config) { c.Timeout = engine.Duration(time.Second) })
	p := pipelineFor(f)
	c := enginetest.NewCtx(t, "GET", "/items/42?full=1", "x-id", "abc")
	p.Serve(c)
	// The deadline is one timer per instance, reset and stopped around each call.
	if allocs := testing.AllocsPerRun(2000, func() { p.Serve(c) }); allocs != 0 {
		t.Errorf("a request with a timeout allocates %v times, want 0", allocs)
	}
}

// BenchmarkPipeline compares a pipeline without filters against one with the bench guest (five
// host calls per request): with the defaults (a 1s timeout, the interrupt checks and the call
// depth count) and with unlimited_time (the same checks, no timer per call).
func BenchmarkPipeline(b *testing.B) {
	run := func(b *testing.B, p *engine.Pipeline) {
		c := enginetest.NewCtx(b, "GET", "/items/42?full=1", "x-id", "abc")
		p.Serve(c)
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			p.Serve(c)
		}
		cpu.report(b)
	}
	b.Run("none", func(b *testing.B) { run(b, pipelineFor()) })
	b.Run("wasm", func(b *testing.B) {
		f, _ := newFilter(b, "bench", nil)
		run(b, pipelineFor(f))
	})
	b.Run("wasm-unlimited", func(b *testing.B) {
		f, _ := newFilter(b, "bench", func(c *Config) { c.UnlimitedTime = true })
		run(b, pipelineFor(f))
	})
	b.Run("go-guest", func(b *testing.B) {
		f, _ := newFilter(b, "goguest", nil)
		run(b, pipelineFor(f))
	})
	b.Run("wasm-release", func(b *testing.B) {
		f, _ := newFilter(b, "bench", func(c *Config) { c.ReleaseBetweenPhases = true })
		run(b, pipelineFor(f))
	})
	// The proxy-wasm twin of "wasm": the same work through the other ABI.
	b.Run("proxy-wasm", func(b *testing.B) {
		f, _ := newFilter(b, "pw_bench", nil)
		run(b, pipelineFor(f))
	})
	b.Run("go-guest-unlimited", func(b *testing.B) {
		f, _ := newFilter(b, "goguest", func(c *Config) { c.UnlimitedTime = true })
		run(b, pipelineFor(f))
	})
}

// cpuClock measures the benchmark goroutine's own CPU time (its thread is locked), which stays
// meaningful on a machine shared with other work where wall-clock ns/op does not.
type cpuClock struct{ start time.Duration }

func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func startCPU() cpuClock {
	runtime.LockOSThread()
	return cpuClock{threadCPU()}
}

// report adds cpu-ns/op; it excludes work on other threads, which ns/op includes.
func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(threadCPU()-c.start)/float64(b.N), "cpu-ns/op")
	runtime.UnlockOSThread()
}

// TestHostFunctionAllocs runs Go-guest requests that use most host functions (header names and
// values, method, URI, protocol, source address, request rewriting, response writes, body
// reads) and checks the host side allocates nothing once the buffers are warm.
func TestHostFunctionAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f, _ := newFilter(t, "goguest", nil)
	p := pipelineFor(f)
	for _, tc := range []string{"names", "values", "info", "respond", "rewrite", "buffer-response", "limits", "status-code"} {
		t.Run(tc, func(t *testing.T) {
			c := enginetest.NewCtx(t, "POST", "/a/b?c=d", "x-test", tc, "x-multi", "1", "x-multi", "2", "x-new-uri", "/n?q=1")
			reset := func() {
				c.Request.Header.SetMethod("POST")
				c.Request.SetRequestURI("/a/b?c=d")
				c.Request.SetBodyString("request body")
				// Undo what "rewrite" adds, as a fresh request would not have it.
				c.Request.Header.Del("x-added")
				c.Request.Header.Del("x-set")
				c.Response.Reset()
			}
			reset()
			p.Serve(c)
			allocs := testing.AllocsPerRun(200, func() {
				reset()
				p.Serve(c)
			})
			if allocs != 0 {
				t.Errorf("%v allocations per request", allocs)
			}
		})
	}
}

// BenchmarkGuestLoop measures a guest looping 10000 times per request: every iteration also runs
// the interrupt check (a decrement of the budget global and a branch), with or without a timer.
func BenchmarkGuestLoop(b *testing.B) {
	for _, unlimited := range []bool{false, true} {
		b.Run(fmt.Sprintf("unlimited_time=%v", unlimited), func(b *testing.B) {
			f, _ := newFilter(b, "loop", func(c *Config) { c.UnlimitedTime = unlimited })
			p := pipelineFor(f)
			c := enginetest.NewCtx(b, "GET", "/")
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				p.Serve(c)
			}
			cpu.report(b)
		})
	}
}

// BenchmarkTrap measures what a request into a trapping guest costs the gateway (the trap, its
// stack trace in the error, discarding the instance and starting another in the background),
// for a WAT guest and a panicking Go guest, with the breaker kept closed; and a request the open
// breaker answers without the guest. cpu-ns/op counts this goroutine only: the background
// replacement runs on others, so ns/op is the better total on an idle machine.
func BenchmarkTrap(b *testing.B) {
	run := func(b *testing.B, f *Filter, headers ...string) {
		p := pipelineFor(f)
		c := enginetest.NewCtx(b, "GET", "/", headers...)
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			c.Response.Reset()
			p.Serve(c)
		}
		cpu.report(b)
	}
	closed := func(c *Config) {
		c.BreakerFailures = 1 << 30
		c.PoolWait = engine.Duration(10 * time.Second)
		c.LogLinesPerSecond = 1
	}
	b.Run("wat", func(b *testing.B) {
		f, _ := newFilter(b, "hostile", closed)
		run(b, f, "x-mode", "u")
	})
	b.Run("go-guest-panic", func(b *testing.B) {
		f, _ := newFilter(b, "goguest", closed)
		run(b, f, "x-test", "panic")
	})
	b.Run("breaker-open", func(b *testing.B) {
		f, _ := newFilter(b, "hostile", func(c *Config) { c.BreakerFailures = 1; c.LogLinesPerSecond = 1 })
		run(b, f, "x-mode", "u")
	})
}
