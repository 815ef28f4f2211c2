package sdktest_test

import (
	"context"
	"os"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/sdk/sdktest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/valyala/fasthttp"
	"github.com/zclconf/go-cty/cty"
)

func referenceConfig() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"header": cty.StringVal("X-API-Key"),
		"keys":   cty.ObjectVal(map[string]cty.Value{"alpha": cty.StringVal("team-a"), "beta": cty.StringVal("team-b")}),
	})
}

// referencePipeline is a pipeline holding only the reference filter built from module, ending in
// a fixed 200 reply: what a request pays for the filter, without sockets.
func referencePipeline(b testing.TB, module string) *engine.Pipeline {
	var stages []engine.Stage
	if module != "" {
		cfg := &wasm.Config{}
		cfg.SetDefaults()
		cfg.Module, cfg.Config, cfg.PoolMin, cfg.PoolMax = module, referenceConfig(), 1, 4
		f, err := wasm.New(cfg, &engine.BuildEnv{Pipeline: "bench", Stage: "wasm"})
		if err != nil {
			b.Fatal(err)
		}
		if c, ok := f.(interface{ Close() error }); ok {
			b.Cleanup(func() { _ = c.Close() })
		}
		stages = append(stages, engine.Stage{Kind: "wasm", Filter: f})
	}
	return engine.NewPipeline("bench", engine.MatchConfig{}, "", stages, engine.TerminalFunc(func(c *engine.Ctx) {
		c.Response.SetStatusCode(fasthttp.StatusOK)
		c.Response.SetBodyString("ok")
	}))
}

// BenchmarkReferenceRequest measures one request through the reference filter (both phases,
// key accepted: 4 host calls on the way in, 1 on the way out) against a pipeline without it.
func BenchmarkReferenceRequest(b *testing.B) {
	b.Run("none", func(b *testing.B) { benchServe(b, referencePipeline(b, "")) })
	for _, rb := range referenceBuilds {
		b.Run(rb.name, func(b *testing.B) { benchServe(b, referencePipeline(b, sdktest.Wasm(b, rb.lang, rb.file))) })
	}
}

func benchServe(b *testing.B, p *engine.Pipeline) {
	c := enginetest.NewCtx(b, "GET", "/orders?id=7", "X-API-Key", "alpha")
	reset := func() {
		// The filter removes the key from the request: put it back for the next iteration.
		c.Request.Header.Set("X-API-Key", "alpha")
		c.Response.Reset()
	}
	p.Serve(c)
	if c.Response.StatusCode() != 200 {
		b.Fatalf("status %d, want 200", c.Response.StatusCode())
	}
	b.ReportAllocs()
	start, n := cpuTime(), 0
	for b.Loop() {
		reset()
		p.Serve(c)
		n++
	}
	reportCPU(b, start, n)
}

// BenchmarkReferenceInstantiate measures what one more pooled instance costs: instantiating the
// compiled reference filter and running its start function, and its linear memory afterwards.
// Host functions are no-ops here (only their existence matters for instantiation).
func BenchmarkReferenceInstantiate(b *testing.B) {
	for _, rb := range referenceBuilds {
		b.Run(rb.name, func(b *testing.B) {
			ctx := context.Background()
			bin, err := os.ReadFile(sdktest.Wasm(b, rb.lang, rb.file))
			if err != nil {
				b.Fatal(err)
			}
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			code, err := rt.CompileModule(ctx, bin)
			if err != nil {
				b.Fatal(err)
			}
			if err := stubHost(ctx, rt, code); err != nil {
				b.Fatal(err)
			}
			cfg := wazero.NewModuleConfig().WithName("")
			if _, ok := code.ExportedFunctions()["_initialize"]; ok {
				cfg = cfg.WithStartFunctions("_initialize")
			} else {
				cfg = cfg.WithStartFunctions()
			}
			var mem uint32
			b.ReportAllocs()
			start, n := cpuTime(), 0
			for b.Loop() {
				n++
				mod, err := rt.InstantiateModule(ctx, code, cfg)
				if err != nil {
					b.Fatal(err)
				}
				mem = mod.Memory().Size()
				_ = mod.Close(ctx)
			}
			reportCPU(b, start, n)
			b.ReportMetric(float64(mem)/1024, "KiB-memory/instance")
		})
	}
}

// stubHost defines every http_handler function code imports as a no-op returning zeros, and
// WASI when the module imports it.
func stubHost(ctx context.Context, rt wazero.Runtime, code wazero.CompiledModule) error {
	host := rt.NewHostModuleBuilder("http_handler")
	needWASI := false
	for _, fn := range code.ImportedFunctions() {
		mod, name, _ := fn.Import()
		if mod == wasi_snapshot_preview1.ModuleName {
			needWASI = true
			continue
		}
		results := len(fn.ResultTypes())
		host.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			for i := 0; i < results; i++ {
				stack[i] = 0
			}
		}), fn.ParamTypes(), fn.ResultTypes()).Export(name)
	}
	if needWASI {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			return err
		}
	}
	_, err := host.Instantiate(ctx)
	return err
}

// TestReferenceAllocs checks that a request through the reference filter allocates nothing on the
// gateway's side, whatever language the guest is written in.
func TestReferenceAllocs(t *testing.T) {
	for _, rb := range referenceBuilds {
		t.Run(rb.name, func(t *testing.T) {
			p := referencePipeline(t, sdktest.Wasm(t, rb.lang, rb.file))
			c := enginetest.NewCtx(t, "GET", "/orders?id=7", "X-API-Key", "alpha")
			p.Serve(c) // grows the Ctx's key slots once, as a pooled Ctx would have
			allocs := testing.AllocsPerRun(200, func() {
				c.Request.Header.Set("X-API-Key", "alpha")
				c.Response.Reset()
				p.Serve(c)
			})
			if got := string(c.Response.Header.Peek("x-consumer")); got != "team-a" || allocs != 0 {
				t.Errorf("x-consumer %q, %v allocations per request; want team-a and 0", got, allocs)
			}
		})
	}
}
