package balancer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestH2PoolBoundAndReap: streams are taken on open connections first, a connection is dialled
// only when none has a free stream, never more than max; past that get waits, then fails with
// errNoFreeConns; a freed stream wakes a waiter; connections idle at two reaper ticks close.
func TestH2PoolBoundAndReap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1},
		Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	h := newH2Client(protocolH2C, ln.Addr().String(), tlsSettings{}, time.Second, 50*time.Millisecond, 2)
	pool := h.pool
	ctx := context.Background()
	url := "http://" + ln.Addr().String() + "/"
	// A connection allows one stream once the server's SETTINGS are in (before, net/http
	// assumes 100): a request on each connection first.
	if _, err := h.roundTrip(pool, mustGet(t, ctx, url), nil); err != nil {
		t.Fatal(err)
	}
	a, err := pool.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.get(ctx) // the first connection's stream is taken: a second connection
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.RoundTrip(mustGet(t, ctx, url)); err != nil {
		t.Fatal(err)
	}
	if b, err = pool.get(ctx); err != nil {
		t.Fatal(err)
	}
	if a == b || pool.size() != 2 {
		t.Fatalf("two streams of one allowed per connection share a connection, or %d connections", pool.size())
	}
	begin := time.Now()
	if _, err := pool.get(ctx); !errors.Is(err, errNoFreeConns) {
		t.Fatalf("a third stream: %v, want errNoFreeConns", err)
	}
	if d := time.Since(begin); d < 40*time.Millisecond {
		t.Errorf("gave up after %v, want the 50ms wait", d)
	}
	pool.wait = 10 * time.Second // the waiter below must not give up on a loaded machine
	got := make(chan error, 1)
	go func() {
		cc, err := pool.get(ctx)
		if err == nil {
			cc.Release()
		}
		got <- err
	}()
	for pool.waiters.Load() == 0 { // until the waiter waits
		time.Sleep(time.Millisecond)
	}
	a.Release()
	if err := <-got; err != nil {
		t.Fatalf("a stream freed did not reach the waiter: %v", err)
	}
	b.Release()
	if pool.size() != 2 {
		t.Fatalf("%d connections", pool.size())
	}
	pool.reap() // first tick: both idle
	if pool.size() != 2 {
		t.Fatalf("%d connections after one tick, want 2", pool.size())
	}
	pool.reap() // second tick: closed
	if n := pool.size(); n != 0 {
		t.Fatalf("%d connections after two idle ticks, want 0", n)
	}
	// A retired target still serves a request that chose it; the connection closes after.
	h.close()
	cc, err := pool.get(ctx)
	if err != nil {
		t.Fatalf("get on a closed pool: %v", err)
	}
	if _, err := cc.RoundTrip(mustGet(t, ctx, url)); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); cc.Err() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a retired target's connection stays open after its last stream")
		}
	}
}

func mustGet(t *testing.T, ctx context.Context, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
