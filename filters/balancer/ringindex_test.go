package balancer

import (
	"fmt"
	"slices"
	"testing"
)

// TestRingIndexFindsTheFirstPoint: the bucket index finds the same point as a binary search over
// the whole ring, for keys anywhere (and on the points themselves, and at the ends).
func TestRingIndexFindsTheFirstPoint(t *testing.T) {
	for _, n := range []int{1, 3, 1000} {
		ts := testTargets(t, fmt.Sprintf("ringindex-%d", n), n, nil)
		r := newRing(ts)
		keys := []uint64{0, 1, ^uint64(0), r.hashes[0], r.hashes[len(r.hashes)-1], r.hashes[len(r.hashes)/2] + 1}
		for i := uint64(0); i < 20000; i++ {
			keys = append(keys, mix64(i))
		}
		for _, k := range keys {
			want, _ := slices.BinarySearch(r.hashes, k)
			if got := r.first(k); got != want {
				t.Fatalf("%d targets, key %#x: point %d, want %d", n, k, got, want)
			}
		}
	}
}
