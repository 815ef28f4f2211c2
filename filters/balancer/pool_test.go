package balancer

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// poolListener accepts connections on loopback and reports, for each, when the pool's side
// closed it.
func poolListener(t *testing.T) (addr string, closed <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c) // returns when the pool closes its end
				ch <- struct{}{}
			}()
		}
	}()
	return ln.Addr().String(), ch
}

func testPool(t *testing.T, max int) (*connPool, <-chan struct{}, *atomic.Int32) {
	addr, closed := poolListener(t)
	d := &dialer{connect: time.Second}
	var dials atomic.Int32
	p := newConnPool(max, func(timeout time.Duration) (*upstreamConn, error) {
		dials.Add(1)
		return d.dialPooled(addr, timeout)
	})
	t.Cleanup(p.close)
	return p, closed, &dials
}

// getTwo takes two connections from p.
func getTwo(t *testing.T, p *connPool) (a, b *upstreamConn) {
	t.Helper()
	a, err := p.get(time.Second)
	if err == nil {
		b, err = p.get(time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func waitClosed(t *testing.T, closed <-chan struct{}, n int) {
	t.Helper()
	for range n {
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("a connection the pool should have closed is still open")
		}
	}
}

func TestConnPoolReuseAndBound(t *testing.T) {
	p, closed, dials := testPool(t, 2)
	a, err := p.get(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.get(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.get(time.Second); !errors.Is(err, errNoFreeConns) {
		t.Fatalf("third connection with max 2: err %v, want errNoFreeConns", err)
	}
	p.put(a)
	p.put(b)
	if c, _ := p.get(time.Second); c != b {
		t.Errorf("the most recently used connection is not reused first")
	}
	p.discard(b)
	waitClosed(t, closed, 1)
	if open, idle := p.size(); open != 1 || idle != 1 {
		t.Errorf("after a discard: %d open, %d idle; want 1, 1", open, idle)
	}
	c, err := p.get(time.Second)
	if err != nil || c != a {
		t.Fatalf("get: %v, %v; want the idle connection", c, err)
	}
	if _, err := p.get(time.Second); err != nil {
		t.Fatalf("a discarded connection still counts against max: %v", err)
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("%d dials, want 3", n)
	}
}

func TestConnPoolDialFailureFreesItsPlace(t *testing.T) {
	d := &dialer{connect: 200 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connections are refused
	p := newConnPool(1, func(timeout time.Duration) (*upstreamConn, error) { return d.dialPooled(addr, timeout) })
	for range 3 {
		var de *dialError
		if _, err := p.get(time.Second); !errors.As(err, &de) {
			t.Fatalf("get: %v, want a dial error (not errNoFreeConns)", err)
		}
	}
	if open, _ := p.size(); open != 0 {
		t.Errorf("%d open after failed dials", open)
	}
}

// TestConnPoolReap checks that a connection idle at two reaper ticks is closed and one used in
// between is kept, and that the reaper stops once nothing is idle.
func TestConnPoolReap(t *testing.T) {
	p, closed, _ := testPool(t, 4)
	a, b := getTwo(t, p)
	p.put(a)
	p.put(b)
	p.reap() // both were idle for at most one tick: kept
	if _, idle := p.size(); idle != 2 {
		t.Fatalf("%d idle after one tick, want 2", idle)
	}
	b2, _ := p.get(time.Second) // b is used again and goes back
	p.put(b2)
	p.reap() // a has been idle at two ticks
	waitClosed(t, closed, 1)
	if open, idle := p.size(); open != 1 || idle != 1 {
		t.Fatalf("after two ticks: %d open, %d idle; want 1, 1", open, idle)
	}
	if c, _ := p.get(time.Second); c != b {
		t.Errorf("the connection used in between was closed")
	}
	p.mu.Lock()
	reaping := p.reaping
	p.mu.Unlock()
	if !reaping {
		t.Errorf("the reaper stopped with a connection still idle")
	}
	p.reap()
	p.mu.Lock()
	reaping = p.reaping
	p.mu.Unlock()
	if reaping {
		t.Errorf("the reaper keeps running with nothing idle")
	}
}

func TestConnPoolClose(t *testing.T) {
	p, closed, _ := testPool(t, 4)
	a, b := getTwo(t, p)
	p.put(a)
	p.close()
	waitClosed(t, closed, 1) // the idle one at once
	p.put(b)
	waitClosed(t, closed, 1) // the one in use when it comes back
	if open, idle := p.size(); open != 0 || idle != 0 {
		t.Errorf("after close: %d open, %d idle", open, idle)
	}
}

// TestSlots checks the in-flight bound: it is never exceeded, and waiters get the slots freed
// while they wait (no wake-up is lost when several slots free at once).
func TestSlots(t *testing.T) {
	tg := &target{maxBusy: 3, freed: make(chan struct{}, 1)}
	for range 3 {
		if !tg.tryAcquire() {
			t.Fatal("a free slot was refused")
		}
	}
	if tg.tryAcquire() || tg.acquire(20*time.Millisecond) {
		t.Fatal("a fourth slot was granted")
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		tg.release()
	}()
	if !tg.acquire(5 * time.Second) {
		t.Fatal("a slot freed during the wait was not granted")
	}
	for range 3 {
		tg.release()
	}

	var inUse, peak atomic.Int32
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if !tg.acquire(5 * time.Second) {
					failed.Add(1)
					return
				}
				n := inUse.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				inUse.Add(-1)
				tg.release()
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d waiters timed out with slots freed every few microseconds", n)
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d in flight at once, bound is 3", p)
	}
	if n := tg.busy.Load(); n != 0 {
		t.Errorf("%d slots still taken", n)
	}
}
