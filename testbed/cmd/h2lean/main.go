// Command h2lean is a MEASUREMENT PROTOTYPE, not a server to run: an h2c (prior knowledge)
// server that answers every request with the benchmark upstream's 64-byte body, built on
// golang.org/x/net/http2's Framer and hpack with one goroutine per connection and none per
// stream. It exists to answer issue 27's question of what a lean HTTP/2 loop would save
// against net/http's HTTP/2 server (testbed/cmd/h2ceiling); RATIONALE.md ("Why keep
// net/http's HTTP/2 server") has the figures.
//
// What it does: the SETTINGS exchange, HEADERS (+CONTINUATION, merged and decoded by the
// Framer's hpack decoder), request DATA discarded with WINDOW_UPDATEs returning the credit,
// the response as HEADERS + DATA written on the connection's goroutine within the peer's
// flow-control windows, PING acks, RST_STREAM, and a GOAWAY when it closes a connection.
// What it leaves out, and a real server could not: priorities, header-list and stream-reset
// limits beyond MAX_CONCURRENT_STREAMS, idle and write timeouts, request bodies handed to a
// handler, graceful shutdown, and a quarter of h2spec's cases (h2spec 2.2.1: 109 of 145 pass).
//
// With -per-stream, each request is answered by a goroutine of its own, as a gateway whose
// pipeline blocks on its upstream would need: it writes its HEADERS and DATA itself, under
// the connection's write lock, and the last of a batch flushes. The difference between the two
// modes is the price of a goroutine per stream on an otherwise lean loop.
//
// Reproduce (two cores; the server on core 1, h2load on core 0):
//
//	go build -o /tmp/h2lean ./testbed/cmd/h2lean
//	taskset -c 1 /tmp/h2lean -listen 127.0.0.1:18120 &
//	taskset -c 0 h2load -c64 -m10 -D 5 http://127.0.0.1:18120/
//
// and the same for testbed/cmd/h2ceiling, Sluice (`protocols = ["http1", "h2c"]`, an empty
// pipeline to testbed/cmd/benchupstream pinned on core 1 too) and nginx (`listen … http2`,
// worker_processes 1), alternating them run by run; CPU per request is the server's
// utime+stime from /proc/PID/stat before and after a run over the requests h2load completed.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// body is the benchmark upstream's 64-byte body (testbed/cmd/benchupstream).
var body = []byte("sluice bench upstream: a 64-byte text/plain body for the proxy.\n")

const (
	maxStreams     = 128     // SETTINGS_MAX_CONCURRENT_STREAMS we announce
	recvWindow     = 1 << 20 // connection receive window we keep topped up
	maxHeaderList  = 16 << 10
	initialPeerWin = 65535 // RFC 9113 §6.9.2 default until the peer's SETTINGS say otherwise
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18120", "h2c (prior knowledge) address")
	perStream := flag.Bool("per-stream", false, "answer each request on a goroutine of its own")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2lean:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "h2lean:", serve(ln, *perStream))
	os.Exit(1)
}

// serve serves each connection ln accepts on a goroutine of its own until Accept fails;
// perStream is -per-stream.
func serve(ln net.Listener, perStream bool) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveConn(c, perStream)
	}
}

// pending is a response whose DATA waits for flow-control credit.
type pending struct {
	id  uint32
	off int
}

// conn is one HTTP/2 connection's state, touched only by its own goroutine, or with
// -per-stream under mu.
type conn struct {
	mu        sync.Mutex
	perStream bool // -per-stream
	handlers  int  // -per-stream: answers started and not yet written; the last one flushes
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	fr        *http2.Framer
	henc      *hpack.Encoder
	hbuf      bytes.Buffer
	lastID    uint32
	open      map[uint32]int32 // streams whose request has not ended → our send window on them
	waiting   []pending        // answered streams whose body waits for window
	sendWin   int32            // connection-level send window
	peerWin   int32            // peer's SETTINGS_INITIAL_WINDOW_SIZE
	maxData   uint32           // peer's SETTINGS_MAX_FRAME_SIZE
	unacked   int32            // request DATA bytes not yet returned by a connection WINDOW_UPDATE
}

func serveConn(nc net.Conn, perStream bool) {
	defer nc.Close()
	c := &conn{nc: nc, perStream: perStream, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10),
		open: map[uint32]int32{}, sendWin: initialPeerWin, peerWin: initialPeerWin, maxData: 16384}
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c.br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	c.fr = http2.NewFramer(c.bw, c.br)
	// The Framer merges HEADERS and its CONTINUATIONs and decodes them into one
	// MetaHeadersFrame, rejecting invalid pseudo-headers and lists over the limit.
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderList
	c.henc = hpack.NewEncoder(&c.hbuf)
	err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxStreams},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList})
	if err == nil {
		// Open the connection window wide at once, so clients never stall uploading.
		err = c.fr.WriteWindowUpdate(0, recvWindow-initialPeerWin)
	}
	if err == nil {
		err = c.loop()
	}
	code := http2.ErrCodeNo
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		code = http2.ErrCode(ce)
	}
	c.mu.Lock() // -per-stream answers may still be writing
	defer c.mu.Unlock()
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		_ = c.fr.WriteGoAway(c.lastID, code, nil)
		_ = c.bw.Flush()
	}
}

// loop reads frames and answers them; it flushes whenever no more input is buffered, so the
// answers to one read of the socket leave in one write.
func (c *conn) loop() error {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if err := c.fr.WriteRSTStream(se.StreamID, se.Code); err != nil {
					return err
				}
				delete(c.open, se.StreamID)
				continue
			}
			return err
		}
		if c.perStream {
			c.mu.Lock()
		}
		err = c.frame(f)
		if err == nil && c.br.Buffered() == 0 && c.handlers == 0 {
			err = c.bw.Flush()
		}
		if c.perStream {
			c.mu.Unlock()
		}
		if err != nil {
			return err
		}
	}
}

// answer answers stream id: at once, or on a goroutine of its own with -per-stream.
func (c *conn) answer(id uint32) error {
	if !c.perStream {
		return c.respond(id)
	}
	c.handlers++ // under mu, held by loop
	go func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.handlers--
		if _, ok := c.open[id]; !ok {
			return // reset by the client meanwhile
		}
		// A write error closes the connection; the reading loop then ends on its read.
		if c.respond(id) != nil || c.handlers == 0 && c.bw.Flush() != nil {
			_ = c.nc.Close()
		}
	}()
	return nil
}

func (c *conn) frame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		err := f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingInitialWindowSize:
				// §6.9.2: the change applies to every open stream's window.
				delta := int32(s.Val) - c.peerWin
				c.peerWin = int32(s.Val)
				for id, w := range c.open {
					c.open[id] = w + delta
				}
			case http2.SettingMaxFrameSize:
				c.maxData = s.Val
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := c.fr.WriteSettingsAck(); err != nil {
			return err
		}
		return c.drain()
	case *http2.MetaHeadersFrame:
		id := f.StreamID
		if _, ok := c.open[id]; ok && f.StreamEnded() {
			return c.answer(id) // trailers end the request
		}
		if id <= c.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // §5.1.1: new stream IDs increase
		}
		c.lastID = id
		if len(c.open) >= maxStreams { // open holds every stream until its body is sent
			return c.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		}
		c.open[id] = c.peerWin
		if f.StreamEnded() {
			return c.answer(id)
		}
		return nil
	case *http2.DataFrame:
		if n := int32(f.Length); n > 0 {
			// The body is discarded, so its credit goes back at once: the stream's now, the
			// connection's in batches of half the window.
			if _, ok := c.open[f.StreamID]; ok && !f.StreamEnded() {
				if err := c.fr.WriteWindowUpdate(f.StreamID, uint32(n)); err != nil {
					return err
				}
			}
			if c.unacked += n; c.unacked >= recvWindow/2 {
				if err := c.fr.WriteWindowUpdate(0, uint32(c.unacked)); err != nil {
					return err
				}
				c.unacked = 0
			}
		}
		if f.StreamEnded() {
			if _, ok := c.open[f.StreamID]; ok {
				return c.answer(f.StreamID)
			}
		}
		return nil
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.sendWin += int32(f.Increment)
		} else if w, ok := c.open[f.StreamID]; ok {
			c.open[f.StreamID] = w + int32(f.Increment)
		}
		return c.drain()
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return c.fr.WritePing(true, f.Data)
	case *http2.RSTStreamFrame:
		delete(c.open, f.StreamID)
		for i, p := range c.waiting {
			if p.id == f.StreamID {
				c.waiting = append(c.waiting[:i], c.waiting[i+1:]...)
				break
			}
		}
		return nil
	case *http2.GoAwayFrame:
		return io.EOF
	}
	return nil // PRIORITY, unknown frame types: ignored (§5.5)
}

// respond writes the response HEADERS and as much of the body as the windows allow.
func (c *conn) respond(id uint32) error {
	c.hbuf.Reset()
	_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = c.henc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain"})
	_ = c.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: "64"})
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}); err != nil {
		return err
	}
	c.waiting = append(c.waiting, pending{id: id})
	return c.drain()
}

// drain sends the waiting bodies the flow-control windows now allow, oldest first.
func (c *conn) drain() error {
	kept := c.waiting[:0]
	for _, p := range c.waiting {
		w := c.open[p.id]
		n := min(len(body)-p.off, int(w), int(c.sendWin), int(c.maxData))
		if n <= 0 {
			kept = append(kept, p)
			continue
		}
		end := p.off+n == len(body)
		if err := c.fr.WriteData(p.id, end, body[p.off:p.off+n]); err != nil {
			return err
		}
		c.sendWin -= int32(n)
		c.open[p.id] = w - int32(n)
		p.off += n
		if end {
			delete(c.open, p.id)
			continue
		}
		kept = append(kept, p)
	}
	clear(c.waiting[len(kept):])
	c.waiting = kept
	return nil
}
