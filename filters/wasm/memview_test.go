package wasm

import "testing"

// TestViewAfterGrow: a guest that grows its memory names headers and receives a value past its
// first page; the host's view of guest memory follows the growth (memview.go), and the pool's
// memory figure counts the grown size.
func TestViewAfterGrow(t *testing.T) {
	f, _ := newFilter(t, "grow", nil)
	for i := range 3 {
		c := do(t, f, "GET", "/", "", "x-id", "abc")
		if c.Response.StatusCode() != 200 {
			t.Fatalf("request %d: status %d", i, c.Response.StatusCode())
		}
		if got := string(c.Request.Header.Peek("x-grown")); got != "yes" {
			t.Errorf("request %d: x-grown = %q, want yes", i, got)
		}
		if got := string(c.Request.Header.Peek("x-cd")); got != "abc" {
			t.Errorf("request %d: x-cd = %q, want abc (x-id read into grown memory)", i, got)
		}
	}
	if got, want := f.memBytes.Load(), int64(4*65536); got < want {
		t.Errorf("memory of the live instances = %d, want at least %d (the grown guest)", got, want)
	}
}
