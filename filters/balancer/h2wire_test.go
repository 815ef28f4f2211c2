package balancer

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// wirePair is an h2Wire over one end of a loopback TCP connection, and the other end.
func wirePair(t *testing.T) (*h2Wire, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w := newH2Wire(c)
	t.Cleanup(func() { _ = w.Close(); _ = peer.Close() })
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	return w, peer
}

func headersFrame(t *testing.T, endStream bool) []byte {
	var b bytes.Buffer
	if err := http2.NewFramer(&b, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1,
		BlockFragment: []byte{0x83}, EndStream: endStream, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func dataFrame(t *testing.T) []byte {
	var b bytes.Buffer
	if err := http2.NewFramer(&b, nil).WriteData(1, true, []byte("message")); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestH2WireHoldsLoneHeaders: a HEADERS frame that does not end its stream waits for the next
// write and leaves with it, in order; one that ends its stream, or any other frame, goes at once;
// a held one left alone goes on its own (h2HoldMax), or when flushed.
func TestH2WireHoldsLoneHeaders(t *testing.T) {
	w, peer := wirePair(t)
	hf, df := headersFrame(t, false), dataFrame(t)
	if n, err := w.Write(hf); n != len(hf) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if len(w.held) != len(hf) {
		t.Fatalf("a lone HEADERS frame not held (%d bytes held)", len(w.held))
	}
	if n, err := w.Write(df); n != len(df) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	got := make([]byte, len(hf)+len(df))
	if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, append(append([]byte{}, hf...), df...)) {
		t.Fatalf("peer read %x, %v; want the HEADERS then the DATA", got, err)
	}

	ended := headersFrame(t, true)
	if _, err := w.Write(ended); err != nil || len(w.held) != 0 {
		t.Fatalf("a HEADERS frame that ends its stream was held (%v)", err)
	}
	if _, err := io.ReadFull(peer, got[:len(ended)]); err != nil {
		t.Fatal(err)
	}

	// Left alone: the timer sends it.
	if _, err := w.Write(hf); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, got[:len(hf)]); err != nil || !bytes.Equal(got[:len(hf)], hf) {
		t.Fatalf("a held HEADERS frame never left on its own: %v", err)
	}

	// Flushed before a read that may wait.
	if _, err := w.Write(hf); err != nil {
		t.Fatal(err)
	}
	k := &h2Call{}
	k.wire.Store(w)
	b := k.body(strings.NewReader("x"), false)
	if !b.mayWait {
		t.Fatal("a body that is not held whole is taken for one that never waits")
	}
	if _, err := b.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	held := len(w.held)
	w.mu.Unlock()
	if held != 0 {
		t.Errorf("a read that may wait left the request's HEADERS held")
	}
	if k.body(bytes.NewReader([]byte("x")), false).mayWait {
		t.Error("a body held whole is taken for one that may wait")
	}
}

// TestH2PoolWire: an h2c target's connections are h2Wires the pool finds again by connection.
func TestH2PoolWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h := newH2Client(protocolH2C, ln.Addr().String(), tlsSettings{}, time.Second, time.Second, 1)
	t.Cleanup(h.close)
	cc, err := h.pool.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.pool.wire(cc) == nil {
		t.Fatal("no h2Wire for an h2c connection")
	}
	cc.Release()
	h.pool.closeIdle()
	if h.pool.wire(cc) != nil {
		t.Error("a closed connection's h2Wire is kept")
	}
}
