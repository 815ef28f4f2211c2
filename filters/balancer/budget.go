package balancer

import "sync/atomic"

// retryBudget keeps retries under budget_percent of requests over a sliding ten-second window
// (as Finagle's and Linkerd's retry budgets do), so retries cannot multiply the load of an
// upstream that is already failing. A small floor lets a quiet upstream retry at all.
type retryBudget struct {
	pct     int64
	buckets [budgetWindow]budgetBucket
}

const (
	budgetWindow     = 10 // one-second buckets
	budgetMinRetries = 10 // retries allowed per window whatever the traffic (when pct > 0)
)

type budgetBucket struct {
	sec              atomic.Int64
	requests, retrys atomic.Int64
}

func (b *retryBudget) bucket(sec int64) *budgetBucket {
	bk := &b.buckets[sec%budgetWindow]
	if s := bk.sec.Load(); s != sec && bk.sec.CompareAndSwap(s, sec) {
		// First use in this second: forget what the slot counted ten seconds ago. A request
		// counted concurrently by another goroutine may be lost: the budget is approximate.
		bk.requests.Store(0)
		bk.retrys.Store(0)
	}
	return bk
}

// onRequest counts a request (not its retries).
func (b *retryBudget) onRequest(now int64) { b.bucket(now / 1e9).requests.Add(1) }

// allow reports whether one more retry fits the budget, and if so counts it.
func (b *retryBudget) allow(now int64) bool {
	if b.pct <= 0 {
		return false
	}
	sec := now / 1e9
	var reqs, retries int64
	for i := range b.buckets {
		bk := &b.buckets[i]
		if s := bk.sec.Load(); s > sec-budgetWindow && s <= sec {
			reqs += bk.requests.Load()
			retries += bk.retrys.Load()
		}
	}
	if retries >= budgetMinRetries+reqs*b.pct/100 {
		return false
	}
	b.bucket(sec).retrys.Add(1)
	return true
}
