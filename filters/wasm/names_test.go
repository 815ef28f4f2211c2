package wasm

import (
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestNameCacheCanonical checks that the cache answers fasthttp's normalization for every name,
// on a miss and on a hit, after its entries have been replaced, and refuses what is not a token.
func TestNameCacheCanonical(t *testing.T) {
	var names []string
	for c := 0; c < 256; c++ {
		if tokenByte[c] {
			names = append(names, string([]byte{byte(c)}), "x-"+string([]byte{byte(c)})+"a")
		}
	}
	names = append(names, "x-wasm", "X-WASM", "x-Wasm", "content-type", "HOST", "x--y", "-x", "x-")
	var nc nameCache
	for round := 0; round < 2; round++ {
		for i, name := range names {
			want := string(fasthttp.AppendNormalizedHeaderKeyBytes(nil, []byte(name)))
			// Each name twice: a miss, then (unless evicted meanwhile) a hit.
			for try := 0; try < 2; try++ {
				got, ok := nc.canonical([]byte(name))
				if !ok || string(got) != want {
					t.Fatalf("round %d, name %d %q (try %d): canonical = %q, %v; want %q", round, i, name, try, got, ok, want)
				}
			}
		}
	}
	for _, bad := range []string{"", "x wasm", "x:y", "x\r\ny", "é", "x\x00"} {
		if got, ok := nc.canonical([]byte(bad)); ok {
			t.Errorf("canonical(%q) = %q, true; want a refusal", bad, got)
		}
		if got, ok := nc.canonical([]byte(bad)); ok {
			t.Errorf("canonical(%q) again = %q, true; a refused name must not be cached", bad, got)
		}
	}
}

// TestNameCacheReusesBuffers: a guest naming more headers than the cache holds, over and over,
// allocates nothing once the entries' buffers have grown.
func TestNameCacheReusesBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var names [][]byte
	for i := 0; i < 3*nameCacheSize; i++ {
		names = append(names, []byte(fmt.Sprintf("x-header-%02d", i)))
	}
	var nc nameCache
	for _, n := range names {
		nc.canonical(n)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, n := range names {
			if _, ok := nc.canonical(n); !ok {
				t.Fatalf("%q refused", n)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("cycling names through the cache allocates %v times, want 0", allocs)
	}
}
