package balancer

import (
	"context"
	"net"
	"sync"
	"time"
)

// h2Wire is a cleartext HTTP/2 connection to a target as net/http's Transport writes to it.
// The Transport flushes a request's HEADERS on their own and then each DATA frame: a gRPC unary
// call, HEADERS then one message, took two writes. h2Wire holds a lone HEADERS frame that does
// not end its stream (a body follows) and sends it with the next write, whatever that is: the
// call's DATA, another stream's frames, or the read loop's answers. The frames keep their
// order; only the time the HEADERS leave moves, to where the Transport writes next.
//
// The next write is at once for a body held whole (the Transport reads it and writes it
// straight after the HEADERS). A body that may wait on the client (a stream, a gRPC replay)
// flushes the wire before each read (h2ReqBody.Read), so the target sees a request whose body is
// slow as soon as it did before. What is left, a body waiting for flow-control credit, is
// bounded by h2HoldMax: the HEADERS then go on their own.
type h2Wire struct {
	net.Conn
	mu   sync.Mutex
	held []byte
	// timer flushes what is held when it fires. It is armed by a hold when it is not already,
	// and left to fire, never stopped: a HEADERS frame is held no longer than h2HoldMax, and a
	// loaded connection arms it once per h2HoldMax rather than once per request (moving a
	// timer per request cost more instructions than the write it saves).
	timer *time.Timer
	armed bool
}

// h2HoldMax bounds how long a HEADERS frame waits for the write that follows it.
const h2HoldMax = time.Millisecond

func newH2Wire(c net.Conn) *h2Wire {
	w := &h2Wire{Conn: c}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	return w
}

func (w *h2Wire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.held) == 0 {
		if loneHeaders(p) {
			w.held = append(w.held, p...)
			if !w.armed {
				w.armed = true
				w.timer.Reset(h2HoldMax)
			}
			return len(p), nil
		}
		return w.Conn.Write(p)
	}
	w.held = append(w.held, p...)
	n, err := w.Conn.Write(w.held)
	// What the Write took of p: the held bytes were taken first.
	n = max(n-(len(w.held)-len(p)), 0)
	w.held = w.held[:0]
	return n, err
}

// fire is the timer's: what is held goes now.
func (w *h2Wire) fire() {
	w.mu.Lock()
	w.armed = false
	w.mu.Unlock()
	w.flush()
}

// flush writes the held HEADERS, if any. A failed write fails the connection's next one too.
func (w *h2Wire) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.held) == 0 {
		return
	}
	if _, err := w.Conn.Write(w.held); err != nil {
		_ = w.Conn.Close() // the Transport's next read or write fails and ends its streams
	}
	w.held = w.held[:0]
}

func (w *h2Wire) Close() error {
	w.timer.Stop()
	return w.Conn.Close()
}

// loneHeaders reports p being exactly one HEADERS frame that ends its header block and not its
// stream.
func loneHeaders(p []byte) bool {
	const (
		frameHeaders = 0x1
		flagEnd      = 0x1 // END_STREAM
		flagHeaders  = 0x4 // END_HEADERS
	)
	if len(p) < 9 || p[3] != frameHeaders || p[4]&flagEnd != 0 || p[4]&flagHeaders == 0 {
		return false
	}
	return int(p[0])<<16|int(p[1])<<8|int(p[2]) == len(p)-9
}

// wireSlot receives the h2Wire a dial made, through the dial's context (h2Pool.get).
type wireSlot struct{ w *h2Wire }

type wireSlotKey struct{}

// noteWire hands w to the slot in ctx, if any.
func noteWire(ctx context.Context, w *h2Wire) {
	if s, ok := ctx.Value(wireSlotKey{}).(*wireSlot); ok {
		s.w = w
	}
}
