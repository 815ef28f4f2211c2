package cache

import "sync"

// A hot reload builds every filter anew. So that a reload does not empty the cache, the stores
// built from configuration are kept per pipeline name: a cache filter built for a pipeline whose
// store is still in use (by the configuration being replaced) with the same max_bytes takes that
// store over, entries, LRU order and fetches in flight included. Entries keep the lifetimes they
// were stored with. The store is dropped when the last filter using it is closed.
var (
	sharedMu sync.Mutex
	shared   = map[string]*sharedStore{}
)

type sharedStore struct {
	s    *store
	max  int64
	refs int
}

// acquireStore returns the pipeline's live store if its size matches, else a new one.
func acquireStore(pipeline string, max int64) *store {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if ss := shared[pipeline]; ss != nil && ss.max == max {
		ss.refs++
		return ss.s
	}
	s := newStore(max)
	shared[pipeline] = &sharedStore{s: s, max: max, refs: 1}
	return s
}

// releaseStore drops one reference to s.
func releaseStore(pipeline string, s *store) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if ss := shared[pipeline]; ss != nil && ss.s == s {
		ss.refs--
		if ss.refs == 0 {
			delete(shared, pipeline)
		}
	}
}
