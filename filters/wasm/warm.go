package wasm

import (
	"context"
	"errors"
	"sync"
)

// A reload builds a new filter for each wasm filter of the configuration while the old one keeps
// serving, then swaps. If the new one started with pool_min instances, the requests in flight
// at the swap would each start one (milliseconds of CPU for a Go guest's runtime), and those
// that find pool_max starting would wait past pool_wait and get 503. So a new filter starts as
// many instances as its predecessor (same pipeline and filter label) has, up to pool_max, before
// the swap: it takes over a warm pool.

// generations holds the filters that exist, per pipeline and label.
var generations = struct {
	sync.Mutex
	m map[string]map[*Filter]struct{}
}{m: map[string]map[*Filter]struct{}{}}

func slotOf(pipeline, label string) string { return pipeline + "\x00" + label }

// predecessorSize is the largest number of instances a filter of slot has now.
func predecessorSize(slot string) int {
	generations.Lock()
	defer generations.Unlock()
	n := 0
	for f := range generations.m[slot] {
		if !f.closed.Load() {
			n = max(n, int(f.live.Load()))
		}
	}
	return n
}

func (f *Filter) register() {
	generations.Lock()
	defer generations.Unlock()
	set := generations.m[f.slot]
	if set == nil {
		set = map[*Filter]struct{}{}
		generations.m[f.slot] = set
	}
	set[f] = struct{}{}
}

func (f *Filter) unregister() {
	generations.Lock()
	defer generations.Unlock()
	if set := generations.m[f.slot]; set != nil {
		delete(set, f)
		if len(set) == 0 {
			delete(generations.m, f.slot)
		}
	}
}

// warm starts n instances into the pool, as many at once as grow allows (one per core).
func (f *Filter) warm(ctx context.Context, n int) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			in, ok, err := f.grow(ctx)
			if err == nil && !ok {
				err = errors.New("pool_max reached while warming the pool")
			}
			if err != nil {
				errs[i] = err
				return
			}
			f.pool.put(in)
		})
	}
	wg.Wait()
	// Several instances failing to start fail alike: report the first.
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
