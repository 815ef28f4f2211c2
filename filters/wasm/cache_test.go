package wasm

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
)

// variant writes a copy of a test guest that differs only by a custom section named tag, so that
// it is a module of its own for the caches (its own content hash).
func variant(t *testing.T, guest, tag string) string {
	t.Helper()
	bin, err := os.ReadFile(Guest(t, guest))
	if err != nil {
		t.Fatal(err)
	}
	// Custom section: id 0, size, name length, name (all short enough for one-byte LEB128s).
	bin = append(bin, 0, byte(1+len(tag)), byte(len(tag)))
	bin = append(bin, tag...)
	p := filepath.Join(t.TempDir(), tag+".wasm")
	if err := os.WriteFile(p, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReloadBackCompilesNothing: switching a filter from module A to B and back to A (closing each
// filter as a reload does) compiles A and B once; the return to A finds it in the compiled-code
// cache. With the cache bounded to nothing, A is compiled again; bounded to one module, the
// least recently used one goes.
func TestReloadBackCompilesNothing(t *testing.T) {
	defer codes.setLimit(DefaultCodeCacheBytes)
	a, b := variant(t, "bench", t.Name()+"-a"), variant(t, "bench", t.Name()+"-b")
	reload := func(cur *Filter, module string) *Filter {
		t.Helper()
		nf, _, err := tryFilter(t, "bench", false, func(c *Config) { c.Module = module })
		if err != nil {
			t.Fatal(err)
		}
		if cur != nil {
			if err := cur.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return nf
	}
	compiles := func(steps ...string) float64 {
		before := metricValue(mCompiles)
		var cur *Filter
		for _, m := range steps {
			cur = reload(cur, map[string]string{"A": a, "B": b}[m])
		}
		cur.Close()
		return metricValue(mCompiles) - before
	}
	if n := compiles("A", "B", "A", "B", "A"); n != 2 {
		t.Errorf("A→B→A→B→A compiled %v modules, want 2", n)
	}
	if n := compiles("A", "B", "A"); n != 0 {
		t.Errorf("A→B→A again compiled %v modules, want 0: both are in the cache", n)
	}
	if got := metricValue(mCacheBytes); got <= 0 {
		t.Errorf("sluice_wasm_code_cache_bytes = %v with two modules kept", got)
	}

	// Room for one module: A, released last, stays; B goes. The room is what the cache counts
	// for A alone: the size of the bytes compiled, which for a filter with a timeout are the
	// instrumented ones, larger than the file.
	codes.setLimit(0)
	codes.setLimit(DefaultCodeCacheBytes)
	compiles("A")
	codes.setLimit(int64(metricValue(mCacheBytes)))
	if n := compiles("A"); n != 0 {
		t.Errorf("A (the most recently used) compiled again")
	}
	if n := compiles("B"); n != 1 {
		t.Errorf("B (evicted) compiled %v times, want 1", n)
	}

	codes.setLimit(0)
	if got := metricValue(mCacheBytes); got != 0 {
		t.Errorf("sluice_wasm_code_cache_bytes = %v with a limit of 0", got)
	}
	if n := compiles("A", "B", "A"); n != 3 {
		t.Errorf("without a cache A→B→A compiled %v modules, want 3", n)
	}
}

// TestReloadWarmsToPredecessor: a filter built while one in the same place of the configuration
// (pipeline and label) exists starts as many instances as that one has (up to pool_max), so the
// swap happens on a warm pool; a validate build starts one.
func TestReloadWarmsToPredecessor(t *testing.T) {
	build := func(validating bool, poolMax int) *Filter {
		t.Helper()
		var cfg Config
		cfg.SetDefaults()
		cfg.Module = Guest(t, "bench")
		cfg.PoolMax = poolMax
		env := &engine.BuildEnv{Pipeline: "warm", Stage: "wasm:" + t.Name(), Validating: validating, Logger: slog.New(slog.DiscardHandler)}
		f, err := build(&cfg, env)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	old := build(false, 8)
	defer old.Close()
	// Five requests in flight at once grow the old filter to five instances.
	var held []*instance
	for range 5 {
		in, err := old.acquire()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, in)
	}
	for _, in := range held {
		old.release(in)
	}

	for _, tc := range []struct {
		validating bool
		poolMax    int
		want       int32
	}{{false, 8, 5}, {false, 3, 3}, {true, 8, 1}} {
		nf := build(tc.validating, tc.poolMax)
		if got := nf.live.Load(); got != tc.want {
			t.Errorf("validating=%v pool_max=%d: the new filter started %d instances, want %d", tc.validating, tc.poolMax, got, tc.want)
		}
		nf.Close()
	}
	// Once the old filter is closed, a new one starts pool_min.
	old.Close()
	nf := build(false, 8)
	defer nf.Close()
	if got := nf.live.Load(); got != 1 {
		t.Errorf("with no predecessor the filter started %d instances, want pool_min (1)", got)
	}
}
