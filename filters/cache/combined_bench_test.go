package cache_test

import (
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/filters/cache"
	"github.com/sluice-gateway/sluice/filters/compress"
)

// BenchmarkHitCompressed is a cache hit of a 16 KiB JSON body that compress (before cache in
// the pipeline) encodes for the client: the per-request cost of the reference pipeline's pair.
func BenchmarkHitCompressed(b *testing.B) {
	body := catalogJSON()
	for _, alg := range []string{"none", "zstd", "br", "gzip"} {
		b.Run(alg, func(b *testing.B) {
			var cc cache.Config
			cc.SetDefaults()
			cf := cache.New(&cc, "bench")
			defer cf.Close()
			var zc compress.Config
			zc.SetDefaults()
			zf, err := compress.New(&zc, 8<<20)
			if err != nil {
				b.Fatal(err)
			}
			term := func(c *engine.Ctx) {
				c.Response.Header.Set("Content-Type", "application/json")
				c.Response.Header.Set("Cache-Control", "max-age=600")
				c.Response.SetBody(body)
			}
			ae := alg
			if alg == "none" {
				ae = "identity"
			}
			warm := enginetest.NewCtx(b, "GET", "/catalog", "Accept-Encoding", ae)
			enginetest.Serve(warm, term, zf, cf)
			c := enginetest.NewCtx(b, "GET", "/catalog", "Accept-Encoding", ae)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				c.Response.Reset()
				zf.OnRequest(c)
				if cf.OnRequest(c) != engine.Respond {
					b.Fatal("miss")
				}
				cf.OnResponse(c)
				zf.OnResponse(c)
			}
		})
	}
}
