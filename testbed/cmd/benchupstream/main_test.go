package main

import (
	"encoding/json"
	"testing"
)

func TestBigJSON(t *testing.T) {
	for _, n := range []int{64, 1000, 16 << 10, 16<<10 + 1, 16<<10 + 2} {
		b := BigJSON(n)
		if len(b) != n {
			t.Errorf("BigJSON(%d) is %d bytes", n, len(b))
		}
		var v []any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("BigJSON(%d) is not JSON: %v", n, err)
		}
	}
	if len(smallBody) != 64 {
		t.Errorf("small body is %d bytes, want 64", len(smallBody))
	}
}
