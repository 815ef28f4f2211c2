package engine

import (
	"testing"
	"time"
)

// TestLogLimit: perSecond lines a window; the rest are left out and counted, and the first line
// of a later window says how many.
func TestLogLimit(t *testing.T) {
	var l LogLimit
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, n := l.Allow(t0.Add(time.Duration(i)*time.Millisecond), 3); !ok || n != 0 {
			t.Fatalf("line %d: allowed %v, suppressed %d; want allowed, 0", i, ok, n)
		}
	}
	for i := range 5 {
		if ok, _ := l.Allow(t0.Add(500*time.Millisecond), 3); ok {
			t.Fatalf("line %d past the window's 3 allowed", i+4)
		}
	}
	if ok, n := l.Allow(t0.Add(999*time.Millisecond), 3); ok || n != 0 {
		t.Fatalf("end of the first window: allowed %v (%d)", ok, n)
	}
	if ok, n := l.Allow(t0.Add(time.Second), 3); !ok || n != 6 {
		t.Fatalf("next window: allowed %v, suppressed %d; want allowed, 6", ok, n)
	}
	if ok, n := l.Allow(t0.Add(time.Second), 3); !ok || n != 0 {
		t.Fatalf("second line of the next window: allowed %v, suppressed %d; want allowed, 0", ok, n)
	}
}
