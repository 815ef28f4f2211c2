package compress

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// BenchmarkCompress compresses a 16 KiB JSON body through the filter's response phase, per
// algorithm and level, and reports the compression ratio (original/compressed).
func BenchmarkCompress(b *testing.B) {
	body := jsonBody(16 << 10)
	levels := map[string][]int{Zstd: {1, 3, 6, 11}, Brotli: {0, 1, 4, 6, 9, 11}, Gzip: {1, 5, 6, 9}}
	for _, alg := range []string{Zstd, Brotli, Gzip} {
		for _, level := range levels[alg] {
			b.Run(fmt.Sprintf("%s-%d", alg, level), func(b *testing.B) {
				f := newFilter(b, func(c *Config) { c.Algorithms = []string{alg}; c.Level = map[string]int{alg: level} })
				c := enginetest.NewCtx(b, "GET", "/items", "Accept-Encoding", alg)
				var out int
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					c.Response.Reset()
					c.Response.Header.SetContentType("application/json")
					c.Response.SetBody(body)
					f.OnResponse(c)
					out = len(c.Response.Body())
				}
				b.ReportMetric(float64(len(body))/float64(out), "ratio")
			})
		}
	}
}

// BenchmarkPassThrough is the common case of a response that is not compressed.
func BenchmarkPassThrough(b *testing.B) {
	f := newFilter(b, nil)
	c := enginetest.NewCtx(b, "GET", "/x", "Accept-Encoding", "gzip, deflate, br, zstd")
	body := []byte(`{"ok":true}`)
	b.ReportAllocs()
	for b.Loop() {
		c.Response.Header.Del("Vary")
		c.Response.Header.SetContentType("application/json")
		c.Response.SetBody(body)
		f.OnRequest(c)
		f.OnResponse(c)
	}
}

func BenchmarkNegotiate(b *testing.B) {
	h := []byte("gzip, deflate, br, zstd")
	algs := []string{Zstd, Brotli, Gzip}
	b.ReportAllocs()
	for b.Loop() {
		negotiate(h, algs)
	}
}

// BenchmarkCompressFile compresses the file named by $SLUICE_BENCH_BODY (for instance the load
// benchmark upstream's 16 KiB JSON) with gzip at levels 1, 5 and 6, to compare with zlib (what
// nginx uses) on the same bytes.
func BenchmarkCompressFile(b *testing.B) {
	name := os.Getenv("SLUICE_BENCH_BODY")
	if name == "" {
		b.Skip("set SLUICE_BENCH_BODY to a file to compress")
	}
	body, err := os.ReadFile(name)
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{Gzip, Zstd, Brotli} {
		for _, level := range []int{1, 5, 6} {
			b.Run(fmt.Sprintf("%s-%d", alg, level), func(b *testing.B) {
				f := newFilter(b, func(c *Config) { c.Algorithms = []string{alg}; c.Level = map[string]int{alg: level} })
				c := enginetest.NewCtx(b, "GET", "/big", "Accept-Encoding", alg)
				var out int
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					c.Response.Reset()
					c.Response.Header.SetContentType("application/json")
					c.Response.SetBody(body)
					f.OnResponse(c)
					out = len(c.Response.Body())
				}
				// CPU time, unlike ns/op, is not inflated by other processes on a busy host.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
				b.ReportMetric(float64(len(body))/float64(out), "ratio")
			})
		}
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
