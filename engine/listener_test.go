package engine

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails Accept with the given errors first, then accepts from the real listener.
type flakyListener struct {
	net.Listener
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

func TestResilientListenerRetriesExhaustion(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	ln := &resilientListener{
		Listener: &flakyListener{Listener: inner, errs: []error{emfile, emfile, &net.OpError{Op: "accept", Err: syscall.ECONNABORTED}}},
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	go func() {
		if c, err := net.Dial("tcp", inner.Addr().String()); err == nil {
			defer c.Close()
			_, _ = c.Write([]byte("x"))
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept after EMFILE: %v, want a connection", err)
	}
	c.Close()

	// A closed listener's error still ends Serve.
	inner.Close()
	if _, err := ln.Accept(); err == nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}

// countingConn counts the reads that reach the connection.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

// TestClientConnReadsAhead checks that fasthttp's one-byte wait followed by a buffer fill costs
// one read of the socket, hands out every byte once and in order (heads below and above the
// read-ahead size, and two requests in one segment), and holds no buffer once drained.
func TestClientConnReadsAhead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	counted := &countingConn{Conn: raw}
	c := &clientConn{Conn: counted}

	for _, size := range []int{60, readAheadSize - 1, readAheadSize, 3*readAheadSize + 7} {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte('a' + i%26)
		}
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		counted.reads = 0
		got := make([]byte, 0, size)
		var one [1]byte
		n, err := c.Read(one[:])
		if n != 1 || err != nil {
			t.Fatalf("size %d: one-byte read = %d, %v", size, n, err)
		}
		got = append(got, one[0])
		buf := make([]byte, 16<<10)
		for len(got) < size {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("size %d: %v after %d bytes", size, err, len(got))
			}
			got = append(got, buf[:n]...)
		}
		if string(got) != string(msg) {
			t.Fatalf("size %d: bytes differ", size)
		}
		if c.stash != nil || len(c.pending) != 0 {
			t.Errorf("size %d: still holds a read-ahead buffer", size)
		}
		if size < readAheadSize && counted.reads != 1 {
			t.Errorf("size %d: %d reads of the socket, want 1", size, counted.reads)
		}
	}
}

// heldConn accepts one connection through a listener with the server's timeouts (so that
// responses may be held) and returns the server's side and the client's.
func heldConn(t *testing.T, clientRcvBuf int) (*clientConn, *net.TCPConn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &resilientListener{Listener: inner, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		watch: newDeadlineWatch(watchTick(time.Second), time.Second, time.Second, time.Second)}
	t.Cleanup(func() { ln.Close() })
	d := net.Dialer{}
	if clientRcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, clientRcvBuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	client, err := d.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	return conn.(*clientConn), client.(*net.TCPConn)
}

// TestClientConnHoldsLastWrite: a complete response's small write is held, then sent by the read
// for the next request before it waits; that read returns the request, and nothing is left held.
func TestClientConnHoldsLastWrite(t *testing.T) {
	c, client := heldConn(t, 0)
	c.hold.Store(true)
	if n, err := c.Write([]byte("response")); n != 8 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if c.held.Load() == nil {
		t.Fatal("the response's write was not held")
	}
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	resp := make([]byte, 8)
	if _, err := io.ReadFull(client, resp); err != nil || string(resp) != "response" {
		t.Fatalf("client read %q, %v; want the held response", resp, err)
	}
	if _, err := client.Write([]byte("next request")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "next request" {
		t.Fatalf("server read %q, want the next request", s)
	}
	if c.held.Load() != nil || c.hold.Load() {
		t.Error("still holding after the read")
	}
	// Without hold (a stream's writes), writes go out at once.
	if _, err := c.Write([]byte("chunk")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, resp[:5]); err != nil || string(resp[:5]) != "chunk" {
		t.Fatalf("client read %q, %v; want the chunk at once", resp[:5], err)
	}
}

// TestClientConnCloseSendsHeldWrite: a connection closed after its response (Connection: close)
// sends the held write first.
func TestClientConnCloseSendsHeldWrite(t *testing.T) {
	c, client := heldConn(t, 0)
	c.hold.Store(true)
	if _, err := c.Write([]byte("last response")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(client)
	if err != nil || string(b) != "last response" {
		t.Fatalf("client read %q, %v; want the response, then the end", b, err)
	}
}

// TestClientConnHeldWriteToFullWindow: the client has not read the response's first write, so
// the socket buffers are nearly full when the held last write goes out with the read: what the
// send buffer does not take is written the usual way, and every byte arrives in order before the
// next request is read.
func TestClientConnHeldWriteToFullWindow(t *testing.T) {
	c, client := heldConn(t, 2048)
	_ = c.Conn.(*net.TCPConn).SetWriteBuffer(2048)
	first := make([]byte, readAheadSize+1000) // written at once: larger than a held write
	for i := range first {
		first[i] = byte('a' + i%26)
	}
	last := make([]byte, readAheadSize)
	for i := range last {
		last[i] = byte('0' + i%10)
	}
	c.hold.Store(true)
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(last); err != nil || c.held.Load() == nil {
		t.Fatalf("last write: %v, held %v; want it held", err, c.held.Load() != nil)
	}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) != "next" {
			err = errors.New("read " + string(buf[:n]) + ", want the next request")
		}
		done <- err
	}()
	// Start reading once the server's read has taken the held write.
	for c.held.Load() != nil {
		runtime.Gosched()
	}
	want := append(append([]byte{}, first...), last...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("the client got the writes altered or out of order")
	}
	if _, err := client.Write([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
