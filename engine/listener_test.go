package engine

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
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
