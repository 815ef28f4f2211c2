package engine

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// One accept loop per listener serves both protocols. Connections pass the listener's guard
// first (resilientListener: connection limits, the deadline watch, the held-response budget),
// so max_connections and max_conns_per_ip count HTTP/1.x and HTTP/2 connections alike. Each
// accepted connection is then classified on a goroutine of its own, never in the loop, under the
// connection's own timeouts (first_byte_timeout, then read_timeout while bytes arrive):
//
//   - TLS: the handshake runs there; ALPN "h2" goes to the HTTP/2 server, "acme-tls/1" is closed
//     once the handshake is done (the certificate was the answer), anything else to fasthttp.
//   - cleartext with h2c on: the bytes that arrive are compared with the HTTP/2 client preface and
//     the connection is decided at the first byte that differs (an HTTP/1.0 request can be shorter
//     than the preface); the bytes read so far are handed back to the connection for whichever
//     server reads it next (clientConn.unread).
//
// A cleartext listener serving HTTP/1.x only has nothing to classify: fasthttp accepts from the
// guard itself, as before HTTP/2 existed, and pays nothing for it.

// h2Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ALPN protocol names (RFC 7301 registry; acme-tls/1 from RFC 8737).
const (
	alpnH2     = "h2"
	alpnHTTP11 = "http/1.1"
	alpnACME   = "acme-tls/1"
)

// connListener is a net.Listener fed with classified connections by the accept loop. The
// server reading from it (fasthttp or net/http) accepts quickly and serves each connection on a
// goroutine of its own, so a hand-over waits only for that.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	// err is what Accept returns once closed: the accept loop's error, so that Serve returns it.
	errMu sync.Mutex
	err   error
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		return nil, l.err
	}
}

// closeWith closes l; Accept returns err from then on.
func (l *connListener) closeWith(err error) {
	l.once.Do(func() {
		l.errMu.Lock()
		l.err = err
		l.errMu.Unlock()
		close(l.closed)
	})
}

func (l *connListener) Close() error { l.closeWith(net.ErrClosed); return nil }

func (l *connListener) Addr() net.Addr { return l.addr }

// hand passes c to the server accepting from l, or closes it when l is closed.
func (l *connListener) hand(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

// acceptLoop accepts from the guarded listener rl until it fails, classifying each connection
// on its own goroutine. h1 and h2 are the servers' listeners (h1 nil: HTTP/1.x is off).
func (s *Server) acceptLoop(rl *resilientListener, h1, h2 *connListener) error {
	for {
		c, err := rl.Accept()
		if err != nil {
			if h1 != nil {
				h1.closeWith(err)
			}
			h2.closeWith(err)
			return err
		}
		go s.classify(c.(*clientConn), h1, h2)
	}
}

// classify decides c's protocol and hands it to its server (see the comment at the top).
func (s *Server) classify(c *clientConn, h1, h2 *connListener) {
	if lt := c.lis.tls; lt != nil {
		tc := tls.Server(c, lt.Config)
		if err := tc.Handshake(); err != nil {
			// A failed handshake (a scanner, a client refusing the certificate, a timeout)
			// ends the connection as fasthttp would have ended it.
			_ = tc.Close()
			return
		}
		switch tc.ConnectionState().NegotiatedProtocol {
		case alpnH2:
			handH2(c, tc, h2)
		case alpnACME:
			// A TLS-ALPN-01 validation: the handshake presented the challenge certificate.
			_ = tc.Close()
		default:
			if h1 == nil {
				_ = tc.Close()
				return
			}
			h1.hand(tc)
		}
		return
	}
	var buf [len(h2Preface)]byte
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		for i := n; i < n+m; i++ {
			if buf[i] != h2Preface[i] {
				// HTTP/1.x: its server reads what was read here again.
				c.unread(buf[:n+m])
				if h1 == nil {
					_ = c.Close()
					return
				}
				h1.hand(c)
				return
			}
		}
		n += m
		if err != nil {
			// The client went away or timed out on a prefix of the preface: nothing to serve.
			_ = c.Close()
			return
		}
	}
	c.unread(buf[:])
	handH2(c, c, h2)
}

// handH2 hands an HTTP/2 connection to the HTTP/2 server. Its deadlines become the HTTP/2
// server's (deadline.go's explicit mode, starting with none): the request cycle clientConn
// follows for HTTP/1.x does not exist on a connection that carries many streams at once, whose
// reads and writes run on two goroutines. The HTTP/2 server keeps idle_timeout itself, and the
// handler keeps read and write timeouts per stream (h2serve.go).
func handH2(c *clientConn, nc net.Conn, h2 *connListener) {
	_ = c.SetDeadline(time.Time{})
	c.h2Ready() // idle until its first stream (h2idle.go)
	h2.hand(nc)
}

// unread puts p back before what c has read ahead, for the next reads to return first. It runs
// once per connection, before any server reads it.
func (c *clientConn) unread(p []byte) {
	if len(p) == 0 {
		return
	}
	s := readAheadPool.Get().(*[]byte)
	if need := len(p) + len(c.pending); need > len(*s) {
		*s = make([]byte, need) // a few bytes past a full read-ahead: rare, and the pool keeps it
	}
	n := copy(*s, p)
	n += copy((*s)[n:], c.pending)
	if c.stash != nil {
		readAheadPool.Put(c.stash)
	}
	c.stash, c.pending = s, (*s)[:n]
}
