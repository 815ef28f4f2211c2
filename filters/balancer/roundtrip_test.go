package balancer

import (
	"bytes"
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDeferredWriteLargerThanSendBuffer sends a request bigger than the socket buffers through
// upstreamConn's deferred write, to a peer that reads late: the write inside Read takes only part
// of it, the rest goes out the usual way, and the whole request and the answer get through.
func TestDeferredWriteLargerThanSendBuffer(t *testing.T) {
	// A small receive buffer from the start (set on the listener, so the window the peer
	// advertises is small too).
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		time.Sleep(100 * time.Millisecond) // the client's socket buffers fill meanwhile
		buf := make([]byte, maxDeferredWrite)
		_, err = io.ReadFull(c, buf)
		got <- buf
		if err == nil {
			_, _ = c.Write([]byte("answer"))
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := nc.(*net.TCPConn)
	_ = tc.SetWriteBuffer(2048)
	c := &upstreamConn{Conn: nc}
	if !c.ex.Init(nc) {
		t.Fatal("no raw exchange on a TCP connection")
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))

	req := bytes.Repeat([]byte("r"), maxDeferredWrite)
	if n, err := c.Write(req); err != nil || n != len(req) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if len(c.unsent) != len(req) {
		t.Fatalf("%d bytes held for the read, want the whole request (%d)", len(c.unsent), len(req))
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("Read: %q, %v; want the answer", buf[:n], err)
	}
	if b := <-got; !bytes.Equal(b, req) {
		t.Error("the peer did not get the request as written")
	}
}

// TestDeferredWriteToClosedPeer: the peer is gone before the request is written. The write inside
// Read fails (or the read sees the reset) at once, as a *net.OpError or io.EOF, not at the
// deadline.
func TestDeferredWriteToClosedPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	(<-accepted).Close()
	time.Sleep(20 * time.Millisecond) // the FIN arrives while the connection is idle
	c := &upstreamConn{Conn: nc}
	c.ex.Init(nc)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_, err = c.Read(make([]byte, 64))
	if err == nil {
		t.Fatal("Read on a connection the peer closed: no error")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the close was noticed after %v (%v), want at once", d, err)
	}
}

// TestIdleConnectionGivesBackItsReadBuffer: a connection going back to its pool leaves its read
// buffer to the next exchange on any connection, and takes one again for its own next exchange;
// a buffer still holding bytes stays with its connection.
func TestIdleConnectionGivesBackItsReadBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = b.Write([]byte("HTTP/1.1 200 OK\r\n")) }()
	c := &upstreamConn{Conn: a}
	br := c.reader()
	if line, err := br.ReadString('\n'); err != nil || line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	p := newConnPool(1, nil)
	defer p.close()
	p.put(c)
	if c.br != nil {
		t.Fatal("an idle connection kept its read buffer")
	}
	if !raceEnabled { // the race detector makes sync.Pool drop items at random
		other := &upstreamConn{Conn: b}
		if other.reader() != br {
			t.Error("the next exchange did not get the buffer the idle connection gave back")
		}
	}

	go func() { _, _ = b.Write([]byte("HTTP/1.1 200 OK\r\nmore")) }()
	br = c.reader()
	if br.Size() != upstreamReadBuffer {
		t.Fatalf("read buffer of %d bytes, want %d", br.Size(), upstreamReadBuffer)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Peek(4); err != nil {
		t.Fatal(err)
	}
	c.idle()
	if c.br != br {
		t.Error("a read buffer holding unread bytes left its connection")
	}
}
