package main

import (
	"strings"
	"testing"
)

func TestParseSelect(t *testing.T) {
	out := `goos: linux
BenchmarkSelect/round_robin/3         	32514415	        16.19 ns/op	       0 B/op	       0 allocs/op
BenchmarkSelect/round_robin/3         	23327680	        13.88 ns/op	       0 B/op	       0 allocs/op
BenchmarkSelect/round_robin/3         	34037270	        18.43 ns/op	       0 B/op	       0 allocs/op
BenchmarkSelect/round_robin/1000      	32484864	        14.91 ns/op	       0 B/op	       0 allocs/op
BenchmarkSelect/ring_hash/3-2         	10138878	        49.96 ns/op	       0 B/op	       0 allocs/op
BenchmarkSelect/ring_hash/1000-2      	 2859585	       119.1 ns/op	      16 B/op	       1 allocs/op
PASS
`
	rows := parseSelect(out)
	if len(rows) != 2 || rows[0].Policy != "round_robin" || rows[1].Policy != "ring_hash" {
		t.Fatalf("rows %+v", rows)
	}
	if rows[0].Ns3 != 16.19 || rows[0].Ns1000 != 14.91 {
		t.Errorf("round_robin: %+v, want the median 16.19 at 3 targets and 14.91 at 1,000", rows[0])
	}
	if rows[1].Allocs1k != 1 {
		t.Errorf("ring_hash allocations at 1,000 targets: %v, want 1", rows[1].Allocs1k)
	}
	var b strings.Builder
	selectSection(&b, rows)
	if !strings.Contains(b.String(), "| ring_hash | 50.0 | 119.1 | 2.38 | 1 |") {
		t.Errorf("section:\n%s", b.String())
	}
}
