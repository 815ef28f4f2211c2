package engine

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// watchedPair returns a client connection accepted through a deadline watchdog with the given
// tick and no server timeouts, and the peer's end.
func watchedPair(t *testing.T, tick time.Duration) (*clientConn, net.Conn, *deadlineWatch) {
	return watchedPairTimeouts(t, tick, 0, 0, 0)
}

func watchedPairTimeouts(t *testing.T, tick, read, write, idle time.Duration) (*clientConn, net.Conn, *deadlineWatch) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w := newDeadlineWatch(tick, read, write, idle)
	c := w.add(nc)
	t.Cleanup(func() {
		c.Close()
		peer.Close()
		w.close()
		<-w.done
	})
	return c, peer, w
}

// readsWithDeadlineFarOut moves c's read deadline an hour out and checks that a byte from the
// peer is read: no earlier deadline is left on the socket.
func readsWithDeadlineFarOut(t *testing.T, c *clientConn, peer net.Conn, when string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("Read %s, deadline an hour out: %v", when, err)
	}
}

// readTimeout reads from c until it fails and returns how long that took.
func readTimeout(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	readFails(t, c)
	return time.Since(start)
}

// readFails reads from c and checks that the read ends in a deadline error.
func readFails(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline error", err)
	}
}

// A deadline far beyond the watchdog's horizon still fires on time: the watchdog puts it on the
// socket before it is due.
func TestLazyDeadlineFires(t *testing.T) {
	c, _, _ := watchedPair(t, 10*time.Millisecond)
	// Timed from before the deadline is set: timed from after, a preemption in between (on a
	// loaded machine) shortens the measured wait below the deadline.
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(150 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if c.rd.onSock.Load() != 0 {
		t.Fatal("a deadline 150ms away went on the socket at once; want it kept off until near")
	}
	readFails(t, c)
	if d := time.Since(start); d < 140*time.Millisecond || d > time.Second {
		t.Errorf("read deadline 150ms fired after %v", d)
	}
}

// Moving a deadline out, again and again as keep-alive requests do, never fires the old one, even
// once the watchdog has put it on the socket.
func TestLazyDeadlineMovedOut(t *testing.T) {
	c, peer, _ := watchedPair(t, 10*time.Millisecond)
	end := time.Now().Add(400 * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		// 15ms is inside the watchdog's horizon (two ticks) and goes on the socket at once;
		// 50ms is kept off it. Either way the next move takes the socket's deadline back.
		ahead := 50 * time.Millisecond
		if i%2 == 0 {
			ahead = 15 * time.Millisecond
		}
		if err := c.SetReadDeadline(time.Now().Add(ahead)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Now each way a deadline gets on the socket (set near: at once; set further: by the
	// watchdog once near), moved out, and then left to pass: if the move left it on the socket,
	// the read after it fails. (Reading right after the churn above instead raced its last
	// 15ms deadline, which a loaded machine lets pass before the read.)
	for _, ahead := range []time.Duration{15 * time.Millisecond, 50 * time.Millisecond} {
		old := time.Now().Add(ahead)
		if err := c.SetReadDeadline(old); err != nil {
			t.Fatal(err)
		}
		for give := time.Now().Add(5 * time.Second); c.rd.onSock.Load() != c.rd.want.Load(); {
			if time.Now().After(give) {
				t.Fatalf("a read deadline %v ahead never went on the socket", ahead)
			}
			time.Sleep(time.Millisecond)
		}
		if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(old) + 10*time.Millisecond) // only a lower bound matters
		if _, err := peer.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("Read after a deadline %v ahead, on the socket, was moved an hour out: %v", ahead, err)
		}
	}
	// Cleared: the socket has no deadline left.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if c.rd.onSock.Load() != 0 {
		t.Error("a cleared deadline is still on the socket")
	}
}

// A deadline in the past applies at once; a later one replaces it, as on any net.Conn.
func TestLazyDeadlinePastThenReset(t *testing.T) {
	c, peer, _ := watchedPair(t, 50*time.Millisecond)
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	// On the socket when the setter returns, not at the watchdog's next tick. (Checked by what
	// the socket has rather than by how fast the read fails: on a loaded machine a read that
	// fails at once can still take longer than a tick.)
	if on, want := c.rd.onSock.Load(), c.rd.want.Load(); on != want {
		t.Fatalf("a past deadline (%d) was not put on the socket at once (it has %d)", want, on)
	}
	if d := readTimeout(t, c); d > time.Second {
		t.Errorf("a past deadline took %v to fail the read", d)
	}
	readsWithDeadlineFarOut(t, c, peer, "after a past deadline")
}

// The write deadline fires too: a peer that never reads stalls the writer until it.
func TestLazyWriteDeadline(t *testing.T) {
	c, _, _ := watchedPair(t, 10*time.Millisecond)
	buf := make([]byte, 1<<20)
	// Timed from before the deadline is set, as in TestLazyDeadlineFires.
	start := time.Now()
	if err := c.SetWriteDeadline(start.Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var err error
	for err == nil && time.Since(start) < 5*time.Second {
		_, err = c.Write(buf)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that never reads: %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > time.Second {
		t.Errorf("write deadline 100ms fired after %v", d)
	}
}

// Setters and the watchdog race on the same connection: run under -race, and the connection must
// still read when its last deadline is far out.
func TestLazyDeadlineConcurrent(t *testing.T) {
	c, peer, _ := watchedPair(t, 5*time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				// Around the watchdog's horizon, so that both paths run.
				_ = c.SetReadDeadline(time.Now().Add(time.Duration(i%20) * time.Millisecond))
			}
		}()
	}
	wg.Wait()
	readsWithDeadlineFarOut(t, c, peer, "after the race")
}

// The watchdog stops once its listener is closed and its last connection is.
func TestDeadlineWatchStops(t *testing.T) {
	w := newDeadlineWatch(5*time.Millisecond, 0, 0, 0)
	a, b := net.Pipe()
	defer b.Close()
	c := w.add(a)
	w.close()
	select {
	case <-w.done:
		t.Fatal("the watchdog stopped with a connection still open")
	case <-time.After(30 * time.Millisecond):
	}
	c.Close()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watchdog did not stop after its last connection closed")
	}
}

func TestWatchTick(t *testing.T) {
	for _, tc := range []struct{ shortest, want time.Duration }{
		{30 * time.Second, 250 * time.Millisecond},
		{500 * time.Millisecond, 50 * time.Millisecond},
		{10 * time.Millisecond, 5 * time.Millisecond},
	} {
		if got := watchTick(tc.shortest); got != tc.want {
			t.Errorf("watchTick(%v) = %v, want %v", tc.shortest, got, tc.want)
		}
	}
}

// exchangeOne has c read a request from peer and write a response, as a server does.
func exchangeOne(t *testing.T, c *clientConn, peer net.Conn) {
	t.Helper()
	if _, err := peer.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
}

// The server's timeouts follow the request cycle: a new connection's first request is under
// read_timeout, the wait for the next one under idle_timeout (not read_timeout), and the next
// request, once its first byte is in, under read_timeout again.
func TestServerTimeoutPhases(t *testing.T) {
	const read, idle = 150 * time.Millisecond, 400 * time.Millisecond
	// Timed from before the connection is added (its read_timeout starts there), not from the
	// read after it: on a loaded machine the two can be further apart than the watchdog's slack.
	start := time.Now()
	c, _, _ := watchedPairTimeouts(t, 10*time.Millisecond, read, time.Second, idle)
	readFails(t, c)
	if d := time.Since(start); d < read || d > read+200*time.Millisecond {
		t.Errorf("a new connection that sends nothing timed out after %v, read_timeout is %v", d, read)
	}

	c, peer, _ := watchedPairTimeouts(t, 10*time.Millisecond, read, time.Second, idle)
	exchangeOne(t, c, peer)
	// Idle now: the wait outlasts read_timeout, and ends in idle_timeout.
	if d := readTimeout(t, c); d < idle || d > idle+200*time.Millisecond {
		t.Errorf("an idle keep-alive connection timed out after %v, idle_timeout is %v", d, idle)
	}

	c, peer, _ = watchedPairTimeouts(t, 10*time.Millisecond, read, time.Second, idle)
	exchangeOne(t, c, peer)
	time.Sleep(2 * read)                                 // idle for longer than read_timeout: still fine
	if _, err := peer.Write([]byte("GET")); err != nil { // the next request starts, never ends
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatalf("first byte after an idle wait longer than read_timeout: %v", err)
	}
	if d := readTimeout(t, c); d > read+200*time.Millisecond {
		t.Errorf("a stalled request timed out after %v, read_timeout is %v", d, read)
	}
}
