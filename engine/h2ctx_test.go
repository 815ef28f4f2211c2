package engine

import (
	"context"
	"testing"
	"time"
)

// TestH2StreamContext checks the stream as a context: AfterFunc's functions run once it ends
// unless stopped, Done and Err follow, a child context ends with it, and AfterFunc on an ended
// stream runs at once.
func TestH2StreamContext(t *testing.T) {
	st := &h2cstream{c: &h2conn{}}
	st.afters = st.afterBuf[:0]
	ran := make(chan int, 4)
	stop1 := AfterFunc(st, func() { ran <- 1 })
	stop2 := AfterFunc(st, func() { ran <- 2 })
	_ = context.AfterFunc(st, func() { ran <- 3 }) // through the method, past the inline room
	child, cancelChild := context.WithCancel(st)
	defer cancelChild()
	if !stop2() || stop2() {
		t.Fatal("stop: want true once, then false")
	}
	if st.Err() != nil {
		t.Fatal("Err before the end")
	}
	done := st.Done()
	st.c.mu.Lock()
	st.cancel()
	st.c.mu.Unlock()
	got := map[int]bool{}
	for range 2 {
		select {
		case n := <-ran:
			got[n] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("AfterFunc functions run: %v, want 1 and 3", got)
		}
	}
	if !got[1] || !got[3] {
		t.Fatalf("AfterFunc functions run: %v, want 1 and 3", got)
	}
	if stop1() {
		t.Fatal("stop after the function ran: want false")
	}
	select {
	case <-done:
	default:
		t.Fatal("Done not closed")
	}
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child context not ended")
	}
	if st.Err() != context.Canceled {
		t.Fatalf("Err = %v, want context.Canceled", st.Err())
	}
	select {
	case <-st.Done(): // made after the end: closed already
	default:
		t.Fatal("Done after the end not closed")
	}
	if AfterFunc(st, func() { ran <- 4 })() {
		t.Fatal("stop of a function on an ended stream: want false")
	}
	select {
	case n := <-ran:
		if n != 4 {
			t.Fatalf("ran %d, want 4", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc on an ended stream did not run")
	}
	select {
	case n := <-ran:
		t.Fatalf("function %d ran after it was stopped", n)
	default:
	}
}
