package wasm

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/tetratelabs/wazero"
)

// The compiled-code cache. wazero's compilation cache (compilationCache) shares the machine code
// of a module among every filter that uses it, and frees it when the last one closes its
// CompiledModule. A reload that switches a filter from module A to B and back to A would then
// compile A again (1.1–1.2 s for a Go guest). codes keeps, for modules no filter uses any more,
// one CompiledModule open, so that the code stays in wazero's cache; the least recently released
// are closed first once their estimated size passes the server's wasm_code_cache_bytes.

// DefaultCodeCacheBytes is the default of server.wasm_code_cache_bytes.
const DefaultCodeCacheBytes = 256 << 20

// codeSizeFactor estimates the memory a compiled module holds from the size of its bytes:
// wazero does not report its machine code size. Measured (resident memory after compiling, GC
// run): the 2.9 MB Go test guest adds 16 MB (5 MB of it Go heap), the 95 KB C guest 0.2 MB.
const codeSizeFactor = 6

var (
	mCompiles = promauto.With(metrics.Registry).NewCounter(prometheus.CounterOpts{
		Name: "sluice_wasm_compilations_total",
		Help: "Wasm modules compiled: not in use by another filter, nor kept by the compiled-code cache."})
	mCacheBytes = promauto.With(metrics.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "sluice_wasm_code_cache_bytes",
		Help: "Estimated size of the compiled Wasm modules kept while no filter uses them (server.wasm_code_cache_bytes bounds it)."})
)

var codes = newCodeCache(DefaultCodeCacheBytes)

type codeKey [sha256.Size]byte

type codeCache struct {
	mu    sync.Mutex
	limit int64
	// users counts the CompiledModules handed out per module; refs maps each to its module.
	users map[codeKey]int
	refs  map[wazero.CompiledModule]codeRef
	// idle holds one open CompiledModule per module no filter uses, most recently released at
	// the front of lru.
	idle  map[codeKey]*list.Element
	lru   list.List
	bytes int64
}

type codeRef struct {
	key  codeKey
	size int64 // estimated: codeSizeFactor × the module's size
}

type idleCode struct {
	key  codeKey
	code wazero.CompiledModule
	size int64
}

func newCodeCache(limit int64) *codeCache {
	return &codeCache{
		limit: limit,
		users: map[codeKey]int{},
		refs:  map[wazero.CompiledModule]codeRef{},
		idle:  map[codeKey]*list.Element{},
	}
}

// setLimit applies server.wasm_code_cache_bytes (each configuration built sets it: the process
// has one cache).
func (cc *codeCache) setLimit(limit int64) {
	cc.mu.Lock()
	cc.limit = limit
	evicted := cc.evictLocked()
	cc.mu.Unlock()
	closeAll(evicted)
}

// compile compiles bin in rt, counting a compilation when no filter uses the module and the
// cache does not keep it. Give the result back with release.
func (cc *codeCache) compile(ctx context.Context, rt wazero.Runtime, bin []byte) (wazero.CompiledModule, error) {
	key := codeKey(sha256.Sum256(bin))
	cc.mu.Lock()
	_, kept := cc.idle[key]
	if cc.users[key] == 0 && !kept {
		mCompiles.Inc()
	}
	cc.mu.Unlock()
	code, err := rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	cc.users[key]++
	cc.refs[code] = codeRef{key: key, size: codeSizeFactor * int64(len(bin))}
	// The module is in use again: the kept reference can go, the new one holds the code.
	var drop wazero.CompiledModule
	if e, ok := cc.idle[key]; ok {
		drop = cc.removeLocked(e)
	}
	cc.mu.Unlock()
	if drop != nil {
		_ = drop.Close(ctx)
	}
	return code, nil
}

// release gives back a CompiledModule from compile. The last user's is kept (if keep and it fits
// the limit) for a later compile of the same module; every other is closed.
func (cc *codeCache) release(code wazero.CompiledModule, keep bool) error {
	cc.mu.Lock()
	ref, ok := cc.refs[code]
	if !ok {
		cc.mu.Unlock()
		return code.Close(context.Background())
	}
	key := ref.key
	delete(cc.refs, code)
	cc.users[key]--
	if cc.users[key] > 0 || !keep {
		if cc.users[key] == 0 {
			delete(cc.users, key)
		}
		cc.mu.Unlock()
		return code.Close(context.Background())
	}
	delete(cc.users, key)
	size := ref.size
	cc.idle[key] = cc.lru.PushFront(&idleCode{key: key, code: code, size: size})
	cc.bytes += size
	evicted := cc.evictLocked()
	mCacheBytes.Set(float64(cc.bytes))
	cc.mu.Unlock()
	closeAll(evicted)
	return nil
}

func (cc *codeCache) removeLocked(e *list.Element) wazero.CompiledModule {
	ic := cc.lru.Remove(e).(*idleCode)
	delete(cc.idle, ic.key)
	cc.bytes -= ic.size
	mCacheBytes.Set(float64(cc.bytes))
	return ic.code
}

// evictLocked takes the least recently released modules out until the rest fit the limit.
func (cc *codeCache) evictLocked() []wazero.CompiledModule {
	var out []wazero.CompiledModule
	for cc.bytes > cc.limit && cc.lru.Len() > 0 {
		out = append(out, cc.removeLocked(cc.lru.Back()))
	}
	return out
}

func closeAll(codes []wazero.CompiledModule) {
	for _, c := range codes {
		_ = c.Close(context.Background())
	}
}
