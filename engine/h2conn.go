package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The engine's own HTTP/2 server (h2_server = "sluice"): one goroutine reads each connection's
// frames and keeps its state; each stream's handler (serveHTTP2, the same one net/http's server
// calls) runs on a goroutine of its own while the pipeline runs, as an HTTP/1.x request runs on
// fasthttp's worker; frames are written under the connection's lock into one buffer that the
// last writer of a burst flushes, so the answers to many streams leave in one write.
// RATIONALE.md ("Why does Sluice have an HTTP/2 server of its own?") says why and what it
// keeps of net/http's hardening.

// HTTP/2 server implementations (h2_server).
const (
	H2ServerNetHTTP = "net/http"
	H2ServerSluice  = "sluice"
)

const (
	// h2RecvStreamWindow is the request body a client may send ahead of the handler's reads
	// on one stream (SETTINGS_INITIAL_WINDOW_SIZE): the back-pressure bound per stream.
	h2RecvStreamWindow = 256 << 10
	// h2RecvConnWindow is the same bound for all of a connection's streams together.
	h2RecvConnWindow = 1 << 20
	// h2MaxWindow is the largest flow-control window (RFC 9113 §6.9.1).
	h2MaxWindow = 1<<31 - 1
	// h2InitialWindow is the protocol's initial window before SETTINGS say otherwise.
	h2InitialWindow = 65535
	// h2MaxFrameSize is the frame payload this server reads: the protocol's default.
	h2MaxFrameSize = 16 << 10
	// h2QueuedPerSlot bounds the streams waiting for a handler: a client that opens and
	// resets streams faster than handlers finish (rapid reset) is told to go away past
	// h2QueuedPerSlot × h2_max_concurrent_streams of them.
	h2QueuedPerSlot = 4
	// h2GoAwayLinger is how long a connection failed with GOAWAY is read (and discarded)
	// before it is closed, so that the client reads the GOAWAY rather than a TCP reset.
	h2GoAwayLinger = time.Second
	// h2GoAwayDiscard bounds what is read and dropped meanwhile: a flood is not read on.
	h2GoAwayDiscard = 256 << 10
)

var (
	errH2StreamClosed = errors.New("http2: stream closed")
	errH2ConnClosed   = errors.New("http2: connection closed")
)

// h2Server is the set of connections the engine's HTTP/2 server serves, for Shutdown.
type h2Server struct {
	s        *Server
	mu       sync.Mutex
	conns    map[*h2conn]struct{}
	draining bool
	empty    chan struct{} // closed when draining and the last connection is gone; nil before
}

func newH2OwnServer(s *Server) *h2Server {
	return &h2Server{s: s, conns: map[*h2conn]struct{}{}}
}

// serve serves each connection l hands over until l is closed.
func (hs *h2Server) serve(l *connListener) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		c := hs.newConn(nc)
		if c == nil {
			_ = nc.Close()
			continue
		}
		go c.serve()
	}
}

// shutdown sends every connection GOAWAY, lets their streams finish and waits for them to close,
// until ctx ends; then closes what is left.
func (hs *h2Server) shutdown(ctx context.Context) error {
	hs.mu.Lock()
	hs.draining = true
	hs.empty = make(chan struct{})
	conns := make([]*h2conn, 0, len(hs.conns))
	for c := range hs.conns {
		conns = append(conns, c)
	}
	if len(hs.conns) == 0 {
		close(hs.empty)
	}
	empty := hs.empty
	hs.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.close()
		}
		return ctx.Err()
	}
}

func (hs *h2Server) remove(c *h2conn) {
	hs.mu.Lock()
	delete(hs.conns, c)
	if hs.draining && len(hs.conns) == 0 {
		select {
		case <-hs.empty:
		default:
			close(hs.empty)
		}
	}
	hs.mu.Unlock()
}

// h2conn is one client connection. Fields below mu are guarded by it; the reading goroutine
// owns rfr and br.
type h2conn struct {
	hs      *h2Server
	s       *Server
	nc      net.Conn
	cfg     *ServerConfig // the listener's settings (timeouts)
	br      *bufio.Reader
	rfr     *http2.Framer
	hdec    *hpack.Decoder // request header blocks (h2hpack.go)
	hb      h2headerBlock  // the block last read
	done    chan struct{}  // closed when the connection closes
	once    sync.Once
	max     int // h2_max_concurrent_streams
	idle    time.Duration
	writing atomic.Int32 // goroutines about to write: the last one flushes

	mu       sync.Mutex
	bw       *bufio.Writer
	wfr      *http2.Framer
	henc     *hpack.Encoder
	hbuf     bytes.Buffer
	werr     error // a write failed: the connection is done
	streams  map[uint32]*h2cstream
	lastID   uint32 // the highest stream the client opened
	handlers int    // handlers running
	queue    []*h2cstream
	sendWin  int64 // what the client lets us send on the connection
	recvWin  int64 // what the client may still send on the connection
	unacked  int64 // request bytes consumed whose connection credit is not yet returned
	peerWin  int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerMax  uint32
	goAway   bool // GOAWAY sent: no new streams
	// flushQueued: a queuedFlush goroutine will flush the buffer (flushSoon)
	flushQueued bool
	draining    bool // shutting down: close once the streams are done
	idleT       *time.Timer
	strs        map[string]string // response field names and values sent lately (intern)
	scratch     []byte            // a field name lower-cased, a number formatted
}

func (hs *h2Server) newConn(nc net.Conn) *h2conn {
	s := hs.s
	cfg := s.connSettings(nc)
	max := cfg.H2MaxConcurrentStreams
	if max <= 0 {
		max = defaultH2MaxConcurrentStreams
	}
	idle := cfg.IdleTimeout.D()
	if idle <= 0 {
		idle = cfg.ReadTimeout.D()
	}
	c := &h2conn{hs: hs, s: s, nc: nc, cfg: cfg, max: max, idle: idle, done: make(chan struct{}),
		streams: map[uint32]*h2cstream{}, sendWin: h2InitialWindow, recvWin: h2RecvConnWindow,
		peerWin: h2InitialWindow, peerMax: 16 << 10}
	c.br = bufio.NewReaderSize(nc, 16<<10)
	c.bw = bufio.NewWriterSize(h2cWriter{c}, 16<<10)
	c.rfr = http2.NewFramer(nil, c.br)
	c.rfr.SetMaxReadFrameSize(h2MaxFrameSize)
	// readHeaderBlock joins HEADERS and CONTINUATION and decodes them: a list past
	// max_header_bytes is Truncated (answered 431), and a header block running on well past it
	// fails the connection (CONTINUATION floods); pseudo-header order and field names are
	// checked there (h2hpack.go).
	c.hdec = hpack.NewDecoder(4096, c.emit)
	c.hdec.SetMaxStringLength(int(min(c.h2MaxHeaderList(), 1<<31-1)))
	c.wfr = http2.NewFramer(c.bw, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.draining {
		return nil
	}
	hs.conns[c] = struct{}{}
	return c
}

// h2cWriter writes to the connection under write_timeout for each write's progress.
type h2cWriter struct{ c *h2conn }

func (w h2cWriter) Write(p []byte) (int, error) {
	if d := w.c.cfg.WriteTimeout.D(); d > 0 {
		_ = w.c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	return w.c.nc.Write(p)
}

// close ends the connection: every stream's context ends, blocked handlers return.
func (c *h2conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.Close()
		c.mu.Lock()
		if c.idleT != nil {
			c.idleT.Stop()
		}
		for _, st := range c.streams {
			st.fail(errH2ConnClosed)
		}
		c.mu.Unlock()
		c.hs.remove(c)
	})
}

// drain is graceful shutdown: GOAWAY now, close once the streams are done.
func (c *h2conn) drain() {
	c.mu.Lock()
	c.draining = true
	c.sendGoAway(http2.ErrCodeNo)
	c.flush()
	quiet := c.quiet()
	c.mu.Unlock()
	if quiet {
		c.close()
	}
}

// quiet reports a connection without streams or handlers.
func (c *h2conn) quiet() bool { return len(c.streams) == 0 && c.handlers == 0 }

func (c *h2conn) sendGoAway(code http2.ErrCode) {
	if c.goAway {
		return
	}
	c.goAway = true
	c.writeErr(c.wfr.WriteGoAway(c.lastID, code, nil))
}

// writeErr records a failed write: the connection is done, its reader ends on the closed conn.
func (c *h2conn) writeErr(err error) {
	if err != nil && c.werr == nil {
		c.werr = err
		_ = c.nc.Close()
	}
}

// flush writes what is buffered. Under mu.
func (c *h2conn) flush() {
	if c.werr == nil && c.bw.Buffered() > 0 {
		c.writeErr(c.bw.Flush())
	}
}

// lock and unlock bracket a handler's writes: the last of the goroutines writing at once
// flushes, so the frames of a burst leave together.
func (c *h2conn) lock() {
	c.writing.Add(1)
	c.mu.Lock()
}

func (c *h2conn) unlock(flush bool) {
	if c.writing.Add(-1) == 0 && flush {
		c.flush()
	}
	c.mu.Unlock()
}

// serve is the connection's reading goroutine.
func (c *h2conn) serve() {
	defer c.close()
	if d := c.cfg.ReadTimeout.D(); d > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(d)) // the preface and first SETTINGS
	}
	var pre [len(h2Preface)]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil || string(pre[:]) != h2Preface {
		return
	}
	c.mu.Lock()
	c.writeErr(c.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(c.max)},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2RecvStreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.s.cfg.MaxHeaderBytes)},
	))
	c.writeErr(c.wfr.WriteWindowUpdate(0, h2RecvConnWindow-h2InitialWindow))
	c.flush()
	c.mu.Unlock()
	first := true
	for {
		f, err := c.rfr.ReadFrame()
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			err = c.readHeaderBlock(hf)
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.mu.Lock()
				if se.StreamID > c.lastID && se.StreamID%2 == 1 {
					c.lastID = se.StreamID // a malformed HEADERS still opened (and closes) it
				}
				c.resetStream(se.StreamID, se.Code)
				c.flushIfIdle()
				c.mu.Unlock()
				continue
			}
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &ce):
				c.fail(http2.ErrCode(ce))
			case errors.Is(err, http2.ErrFrameTooLarge):
				c.fail(http2.ErrCodeFrameSize)
			}
			return // the client went away, or a read failed (idle eviction's past deadline)
		}
		if first {
			// The preface's SETTINGS must come first (RFC 9113 §3.4).
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				c.fail(http2.ErrCodeProtocol)
				return
			}
			first = false
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		c.mu.Lock()
		err = c.frame(f)
		if err != nil {
			c.mu.Unlock()
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.fail(http2.ErrCode(ce))
			}
			return
		}
		c.flushIfIdle()
		c.mu.Unlock()
	}
}

// flushIfIdle flushes the reader's answers once no more input is buffered and no handler is
// about to write (it will flush). Under mu.
func (c *h2conn) flushIfIdle() {
	if c.br.Buffered() == 0 && c.writing.Load() == 0 {
		c.flush()
	}
}

// fail ends the connection with a connection error: GOAWAY, then what the client still sends
// is read and dropped for a moment (up to h2GoAwayDiscard), so that it sees the GOAWAY.
func (c *h2conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	c.sendGoAway(code)
	c.flush()
	c.mu.Unlock()
	c.s.log.Debug("http2 connection error", "code", code.String(), "remote", c.nc.RemoteAddr().String())
	_ = c.nc.SetReadDeadline(time.Now().Add(h2GoAwayLinger))
	_, _ = io.CopyN(io.Discard, c.br, h2GoAwayDiscard)
}

// frame handles one frame from the client. Under mu. An error ends the connection.
func (c *h2conn) frame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		return c.settings(f)
	case *http2.HeadersFrame:
		return c.headers(&c.hb) // decoded by readHeaderBlock
	case *http2.DataFrame:
		return c.data(f)
	case *http2.WindowUpdateFrame:
		return c.windowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.writeErr(c.wfr.WritePing(true, f.Data))
		}
		return nil
	case *http2.RSTStreamFrame:
		if c.idleStream(f.StreamID) {
			return http2.ConnectionError(http2.ErrCodeProtocol) // §6.4: RST_STREAM on an idle stream
		}
		if st := c.streams[f.StreamID]; st != nil {
			c.closeStream(st, errH2StreamClosed)
		}
		return nil
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			c.resetStream(f.StreamID, http2.ErrCodeProtocol) // §5.3.1: depends on itself
		}
		return nil
	case *http2.GoAwayFrame:
		// The client opens no more streams; those under way finish.
		c.draining = true
		if c.quiet() {
			c.flush() // answers a handler left for its later flush (handlerDone)
			return io.EOF
		}
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol) // clients do not push (§8.4)
	}
	return nil // unknown frame types are ignored (§5.5)
}

// idleStream reports a stream the client has not opened yet.
// This server never opens (even) streams.
func (c *h2conn) idleStream(id uint32) bool { return id%2 == 0 || id > c.lastID }

func (c *h2conn) settings(f *http2.SettingsFrame) error {
	// Each setting is applied in order: several values of one setting end with the last.
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			// §6.9.2: the change applies to every stream's window, and may make it negative.
			delta := int64(s.Val) - c.peerWin
			c.peerWin = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > h2MaxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.wake()
			}
		case http2.SettingMaxFrameSize:
			c.peerMax = s.Val
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.writeErr(c.wfr.WriteSettingsAck())
	return nil
}

func (c *h2conn) windowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		c.sendWin += int64(f.Increment)
		if c.sendWin > h2MaxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, st := range c.streams {
			st.wake()
		}
		return nil
	}
	if c.idleStream(f.StreamID) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st := c.streams[f.StreamID]; st != nil {
		st.sendWin += int64(f.Increment)
		if st.sendWin > h2MaxWindow {
			c.resetStream(st.id, http2.ErrCodeFlowControl)
			return nil
		}
		st.wake()
	}
	return nil
}

// resetStream sends RST_STREAM and closes the stream. Under mu.
func (c *h2conn) resetStream(id uint32, code http2.ErrCode) {
	c.writeErr(c.wfr.WriteRSTStream(id, code))
	if st := c.streams[id]; st != nil {
		c.closeStream(st, errH2StreamClosed)
	}
}

// closeStream forgets a stream reset by either side: its body reads and response writes fail,
// its ClientContext ends, and what it held of the connection window comes back. Under mu.
func (c *h2conn) closeStream(st *h2cstream, err error) {
	if st.closed {
		return
	}
	st.closed = true
	st.fail(err)
	delete(c.streams, st.id)
	c.giveConn(int64(len(st.body) - st.bodyOff))
	st.body, st.bodyOff = nil, 0
	c.maybeIdle()
}

// giveConn returns connection-level credit for n received bytes.
func (c *h2conn) giveConn(n int64) {
	if n <= 0 {
		return
	}
	c.unacked += n
	if c.unacked >= h2RecvConnWindow/4 {
		c.writeErr(c.wfr.WriteWindowUpdate(0, uint32(c.unacked)))
		c.recvWin += c.unacked
		c.unacked = 0
	}
}

// maybeIdle arms the idle timer, or closes a draining connection, once nothing is under way.
func (c *h2conn) maybeIdle() {
	if !c.quiet() {
		return
	}
	if c.draining {
		c.flush() // the last answers leave before the connection closes (handlerDone flushes later)
		go c.close()
		return
	}
	if c.idle <= 0 {
		return
	}
	if c.idleT == nil {
		c.idleT = time.AfterFunc(c.idle, c.idleClose)
	} else {
		c.idleT.Reset(c.idle)
	}
}

func (c *h2conn) idleClose() {
	c.mu.Lock()
	quiet := c.quiet()
	if quiet {
		c.sendGoAway(http2.ErrCodeNo)
		c.flush()
	}
	c.mu.Unlock()
	if quiet {
		c.close()
	}
}

func (c *h2conn) data(f *http2.DataFrame) error {
	n := int64(f.Length)
	if n > c.recvWin {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWin -= n
	st := c.streams[f.StreamID]
	if st == nil || st.remoteEnded {
		if c.idleStream(f.StreamID) {
			return http2.ConnectionError(http2.ErrCodeProtocol) // §6.1: DATA on an idle stream
		}
		c.giveConn(n)
		c.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		return nil
	}
	if n > st.recvWin {
		c.giveConn(n)
		c.resetStream(st.id, http2.ErrCodeFlowControl)
		return nil
	}
	st.recvWin -= n
	p := f.Data()
	st.got += int64(len(p))
	if st.declared >= 0 && (st.got > st.declared || f.StreamEnded() && st.got != st.declared) {
		c.giveConn(n)
		c.resetStream(st.id, http2.ErrCodeProtocol) // content-length and DATA disagree (§8.1.1)
		return nil
	}
	// Padding is flow-controlled but never read: its credit goes back at once.
	if pad := n - int64(len(p)); pad > 0 {
		c.giveConn(pad)
		st.unacked += pad
	}
	if len(p) > 0 {
		if st.bodyOff == len(st.body) {
			st.body, st.bodyOff = st.body[:0], 0
		}
		st.body = append(st.body, p...)
	}
	if f.StreamEnded() {
		st.remoteEnded = true
	}
	st.wake()
	return nil
}

// headers opens a stream, or ends one with trailers.
func (c *h2conn) headers(f *h2headerBlock) error {
	id := f.id
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol) // clients open odd streams (§5.1.1)
	}
	if st := c.streams[id]; st != nil {
		switch {
		case st.remoteEnded:
			c.resetStream(id, http2.ErrCodeStreamClosed) // §5.1: half-closed (remote)
		case !f.ended || len(f.PseudoFields()) > 0:
			c.resetStream(id, http2.ErrCodeProtocol) // trailers end the stream, and have no pseudo-headers (§8.1)
		case st.declared >= 0 && st.got != st.declared:
			c.resetStream(id, http2.ErrCodeProtocol)
		default:
			st.remoteEnded = true // request trailers are not forwarded
			st.wake()
		}
		return nil
	}
	if id <= c.lastID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // a closed stream, or IDs going down
	}
	if f.hasPrio && f.priority.StreamDep == id {
		c.lastID = id
		c.resetStream(id, http2.ErrCodeProtocol) // §5.3.1: depends on itself
		return nil
	}
	if c.goAway {
		return nil // after GOAWAY: not processed, the client retries elsewhere (§6.8)
	}
	c.lastID = id
	if c.idleT != nil {
		c.idleT.Stop()
	}
	if f.truncated {
		// The header list passed max_header_bytes (or an HPACK bomb expanded past it).
		c.hbuf.Reset()
		_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "431"})
		c.writeErr(c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: true, EndHeaders: true}))
		if !f.ended {
			c.writeErr(c.wfr.WriteRSTStream(id, http2.ErrCodeNo))
		}
		c.maybeIdle()
		return nil
	}
	if len(c.streams) >= c.max {
		c.writeErr(c.wfr.WriteRSTStream(id, http2.ErrCodeRefusedStream))
		c.maybeIdle()
		return nil
	}
	st, ok := c.newStream(f)
	if !ok {
		c.writeErr(c.wfr.WriteRSTStream(id, http2.ErrCodeProtocol)) // malformed (§8.1.1)
		c.maybeIdle()
		return nil
	}
	c.streams[id] = st
	if c.handlers >= c.max {
		// Handlers of reset streams still running (rapid reset): the stream waits, within bounds.
		if len(c.queue) >= h2QueuedPerSlot*c.max {
			return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
		}
		c.queue = append(c.queue, st)
		return nil
	}
	c.start(st)
	return nil
}

// start runs st's handler on a goroutine of its own. A pool of waiting goroutines (keeping their
// grown stacks) measured no different (RATIONALE.md), so none is kept.
func (c *h2conn) start(st *h2cstream) {
	c.handlers++
	go c.run(st)
}

// newStream builds a stream and its request from a HEADERS frame, or reports it malformed.
func (c *h2conn) newStream(f *h2headerBlock) (*h2cstream, bool) {
	var method, scheme, path, authority string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":path":
			path = hf.Value
		case ":authority":
			authority = hf.Value
		default:
			return nil, false // :status, :protocol (extended CONNECT is not offered)
		}
	}
	if method == "" || (method == http.MethodConnect && (authority == "" || scheme != "" || path != "")) ||
		(method != http.MethodConnect && (scheme == "" || path == "")) {
		return nil, false
	}
	declared := int64(-1)
	fields := f.RegularFields()
	expect, continue100, host := false, false, false
	for _, hf := range fields {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return nil, false // connection-specific (§8.2.2)
		case "te":
			if hf.Value != "trailers" {
				return nil, false
			}
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || declared >= 0 && n != declared {
				return nil, false
			}
			declared = n
		case "host":
			if !host && authority == "" {
				authority = hf.Value // the first one; fillHeader refuses others that differ
			}
			host = true
		case "expect":
			if !expect {
				expect = true // the first one counts
				continue100 = strings.EqualFold(hf.Value, "100-continue")
			}
		}
	}
	st := &h2cstream{c: c, id: f.id, declared: declared, sendWin: c.peerWin, recvWin: h2RecvStreamWindow,
		remoteEnded: f.ended, noBody: f.ended, clen: -1, method: method, path: path, authority: authority}
	if st.remoteEnded && declared > 0 {
		return nil, false // content-length and (no) DATA disagree
	}
	st.expect100 = continue100 && !st.remoteEnded
	st.afters = st.afterBuf[:0]
	// The fields are the decoder's strings, kept as they are (the block's slice is reused):
	// fillHeader builds the fasthttp request from them on the handler's goroutine.
	st.fields = append(st.fieldBuf[:0], fields...)
	return st, true
}

// fillHeader builds hs's request from the stream's pseudo-header and regular fields, which
// newStream checked for HTTP/2's own rules (§8.2, §8.3); what is left are the rules admit
// applies to HTTP/1.x, as netRequest.fillHeader applies them to net/http's requests.
func (st *h2cstream) fillHeader(hs *h2stream) int {
	hs.declared = st.declared
	if st.noBody {
		hs.declared = 0
	} else if st.declared != 0 {
		hs.reqBody = st
	}
	if status := hs.setStart(st.method, st.path, st.authority); status != 0 {
		return status
	}
	h := &hs.fc.Request.Header
	auth, host := 0, 0
	for _, hf := range st.fields {
		switch hf.Name {
		case "host":
			// :authority wins, and a Host naming something else makes the request malformed
			// (RFC 9113 §8.3.1): two hosts, one routed on and one acted on.
			if host++; host > 1 || !strings.EqualFold(hf.Value, st.authority) {
				return fasthttp.StatusBadRequest
			}
			continue
		case "authorization":
			// Not a list: with two, one would be verified and the other acted on.
			if auth++; auth > 1 {
				return fasthttp.StatusBadRequest
			}
		}
		// fasthttp writes field names in canonical case, and the crumbs of a split cookie
		// field (§8.2.3) into one Cookie field.
		h.Add(hf.Name, hf.Value)
	}
	return 0
}

// run serves one stream on its own goroutine: the same handler net/http's server calls.
func (c *h2conn) run(st *h2cstream) {
	defer c.handlerDone(st)
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				// The request by its normalized path: the query may carry credentials.
				raw, _, _ := strings.Cut(st.path, "?")
				c.s.log.Error("http2 handler panicked", "panic", p, "stream", st.id, "method", st.method,
					"path", string(NormalizePath(nil, []byte(raw))))
			}
			st.aborted = true
		}
	}()
	c.s.serveStream(st, st, st, c.nc, st)
}

// handlerDone ends the stream's response (trailers, or END_STREAM), resets a stream whose
// request is still arriving, and starts a queued stream.
func (c *h2conn) handlerDone(st *h2cstream) {
	c.lock()
	if !st.closed {
		switch {
		case st.aborted:
			c.resetStream(st.id, http2.ErrCodeInternal)
		default:
			st.finish()
			if !st.remoteEnded {
				// The answer is complete; the rest of the request is not wanted (§8.1).
				c.resetStream(st.id, http2.ErrCodeNo)
			} else {
				c.closeStream(st, errH2StreamClosed)
			}
		}
	}
	st.cancel()
	c.handlers--
	for len(c.queue) > 0 && c.handlers < c.max {
		next := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if !next.closed {
			c.start(next) // a stream reset while it waited sends nothing upstream
		} else {
			next.cancel()
		}
	}
	c.maybeIdle()
	c.flushSoon()
	c.unlock(false)
}

// flushSoon has the connection's buffer flushed by a goroutine of its own, which runs once the
// goroutines ready to run went first: the caller's, until it blocks or ends (a streamed
// response's next part, its end and trailers are then written with its head in one write to the
// client), and the handlers of other streams whose upstream answers arrived together (one write
// for a burst of answers rather than one per stream). A caller about to block on the client
// (flow control) flushes itself. Under mu.
func (c *h2conn) flushSoon() {
	if c.flushQueued || c.werr != nil || c.bw.Buffered() == 0 {
		return
	}
	c.flushQueued = true
	go c.queuedFlush()
}

// queuedFlush is flushSoon's goroutine.
func (c *h2conn) queuedFlush() {
	// Yield once more: the goroutines made ready before this one (other handlers woken by the
	// same upstream read) add their frames first.
	runtime.Gosched()
	c.lock()
	c.flushQueued = false
	c.unlock(true)
}

// h2StreamFields is how many regular fields a stream keeps without allocating for them: a
// browser's usual request (h2load sends one).
const h2StreamFields = 12

// h2cstream is one stream: the request body it receives and the response it sends. Its fields
// are guarded by the connection's mu. It is the handler's http.ResponseWriter, its request's
// h2Source and the reader of its request body.
type h2cstream struct {
	c        *h2conn
	id       uint32
	closed   bool          // reset, or done: not in c.streams
	aborted  bool          // the handler panicked: reset the stream
	err      error         // why reads and writes fail
	wakeCh   chan struct{} // made by the first wait: a stream that never waits needs none
	declared int64         // the request's content-length; -1: none

	// the request as decoded: its pseudo-header fields and its regular fields (fillHeader),
	// with room for a usual request's in fieldBuf
	method, path, authority string
	fields                  []hpack.HeaderField
	fieldBuf                [h2StreamFields]hpack.HeaderField
	noBody                  bool // HEADERS ended the stream (remoteEnded then, which mu guards)

	// the stream as a context (h2ctx.go)
	ended    atomic.Bool   // ended: Err is not nil
	doneCh   chan struct{} // Done's, made when first asked for
	afters   []h2after     // AfterFunc's functions not yet run or stopped
	afterBuf [2]h2after    // afters' first room: the balancer's watch, a body's context
	afterID  uint64

	// request body
	remoteEnded bool
	body        []byte
	bodyOff     int
	got         int64
	recvWin     int64 // what the client may still send
	unacked     int64 // consumed, credit not yet returned
	expect100   bool
	rdl, wdl    time.Time

	// response
	sendWin int64
	// fh is the Ctx's response header while serveHTTP2 writes the response: its fields are
	// encoded from it directly (sendHeader), not copied into hdr first; hdr then holds only
	// trailers. nil once the response is settled (the Ctx is reused).
	fh         *fasthttp.ResponseHeader
	hdr        http.Header
	status     int
	headerSent bool
	localEnded bool
	clen       int64 // the response's content-length; -1: none
	sendLen    bool  // fh is set: send clen as the content-length field
	// fhTrailers: the trailer fields fh announces end the response, encoded from fh
	// (encodeTrailers) rather than copied into hdr
	fhTrailers bool
	written    int64
}

// wake wakes the stream's waiter, if any. Under mu, as wait's making of wakeCh is: a wake before
// it had nothing to wake (the waiter looks at the state under mu before it waits).
func (st *h2cstream) wake() {
	select {
	case st.wakeCh <- struct{}{}:
	default:
	}
}

// fail makes the stream's reads and writes fail with err, and ends its ClientContext. Under mu.
func (st *h2cstream) fail(err error) {
	if st.err == nil {
		st.err = err
	}
	st.cancel()
	st.wake()
}

// wait waits, mu released, for the stream to be woken, until deadline (zero: none).
func (st *h2cstream) wait(deadline time.Time) error {
	c := st.c
	if st.wakeCh == nil {
		st.wakeCh = make(chan struct{}, 1)
	}
	wakeCh := st.wakeCh
	// The waiter is not writing meanwhile: others' frames (the reader's acknowledgements)
	// must not wait for it to flush them.
	if deadline.IsZero() {
		c.writing.Add(-1)
		c.mu.Unlock()
		select {
		case <-wakeCh:
		case <-c.done:
		}
		c.lock()
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	c.writing.Add(-1)
	c.mu.Unlock()
	select {
	case <-wakeCh:
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	c.lock()
	return nil
}

// Read reads the request body as it arrives, giving the client credit for what was read.
func (st *h2cstream) Read(p []byte) (int, error) {
	c := st.c
	c.lock()
	defer c.unlock(true)
	for {
		if st.bodyOff < len(st.body) {
			n := copy(p, st.body[st.bodyOff:])
			st.bodyOff += n
			st.credit(int64(n))
			return n, nil
		}
		if st.remoteEnded {
			return 0, io.EOF
		}
		if st.err != nil {
			return 0, st.err
		}
		if c.werr != nil {
			return 0, errH2ConnClosed
		}
		if st.expect100 {
			// The handler wants the body: let a client waiting for it send it (RFC 9110 §10.1.1).
			st.expect100 = false
			c.hbuf.Reset()
			_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "100"})
			c.writeErr(c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}))
		}
		if !st.rdl.IsZero() && !time.Now().Before(st.rdl) {
			return 0, os.ErrDeadlineExceeded
		}
		c.flush() // credit returned so far must reach the client before we wait for more
		if err := st.wait(st.rdl); err != nil {
			return 0, err
		}
	}
}

// credit returns flow-control credit for n consumed bytes, in batches.
func (st *h2cstream) credit(n int64) {
	c := st.c
	c.giveConn(n)
	st.unacked += n
	if !st.remoteEnded && !st.closed && st.unacked >= h2RecvStreamWindow/4 {
		c.writeErr(c.wfr.WriteWindowUpdate(st.id, uint32(st.unacked)))
		st.recvWin += st.unacked
		st.unacked = 0
	}
}

// Header is the response's header map.
func (st *h2cstream) Header() http.Header {
	if st.hdr == nil {
		st.hdr = make(http.Header, 8)
	}
	return st.hdr
}

// WriteHeader records the status; the HEADERS frame leaves with the first write, flush or the
// handler's end, so a response without a body is one frame.
func (st *h2cstream) WriteHeader(code int) {
	if st.status != 0 || code < 200 {
		return
	}
	st.status = code
	if v := st.hdr["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil {
			st.clen = n
		}
	}
}

// Write sends p as DATA within the flow-control windows; the frame that completes a declared
// content-length ends the stream.
func (st *h2cstream) Write(p []byte) (int, error) {
	if st.status == 0 {
		st.WriteHeader(http.StatusOK)
	}
	c := st.c
	c.lock()
	defer c.unlock(false)
	if err := st.writable(); err != nil {
		return 0, err
	}
	if !st.headerSent {
		st.sendHeader(false)
	}
	written := 0
	for len(p) > 0 {
		n, err := st.window()
		if err != nil {
			return written, err
		}
		n = min(n, len(p))
		st.written += int64(n)
		end := st.clen >= 0 && st.written == st.clen && n == len(p) && !st.hasTrailers()
		c.writeErr(c.wfr.WriteData(st.id, end, p[:n]))
		if c.werr != nil {
			return written, c.werr
		}
		st.sendWin -= int64(n)
		c.sendWin -= int64(n)
		written += n
		p = p[n:]
		if end {
			st.localEnded = true
		}
	}
	return written, nil
}

func (st *h2cstream) writable() error {
	if st.err != nil {
		return st.err
	}
	if st.c.werr != nil {
		return errH2ConnClosed
	}
	if st.localEnded {
		return errH2StreamClosed
	}
	return nil
}

// window waits for flow-control credit to send, under the write deadline, and returns how much
// may go in one frame.
func (st *h2cstream) window() (int, error) {
	c := st.c
	for {
		if err := st.writable(); err != nil {
			return 0, err
		}
		if n := min(st.sendWin, c.sendWin, int64(c.peerMax)); n > 0 {
			return int(n), nil
		}
		if !st.wdl.IsZero() && !time.Now().Before(st.wdl) {
			return 0, os.ErrDeadlineExceeded
		}
		c.flush() // what went before must reach the client for it to give credit
		if err := st.wait(st.wdl); err != nil {
			return 0, err
		}
	}
}

// hasTrailers reports trailer fields: the response's own (fhTrailers), or in the header map
// (net/http's TrailerPrefix convention).
func (st *h2cstream) hasTrailers() bool {
	if st.fhTrailers && st.fh != nil {
		return true
	}
	for k := range st.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// sendHeader writes the response's HEADERS (and CONTINUATION) frames. Under mu.
func (st *h2cstream) sendHeader(end bool) {
	c := st.c
	st.headerSent = true
	c.hbuf.Reset()
	status := st.status
	if status == 0 {
		status = http.StatusOK
	}
	_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: h2StatusValue(status)})
	hasDate := false
	if st.fh != nil {
		hasDate = st.encodeFields()
	}
	for k, vs := range st.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		name := lowerHeader(k)
		if name == "date" {
			hasDate = true
		}
		for _, v := range vs {
			_ = c.henc.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
	if !hasDate {
		_ = c.henc.WriteField(hpack.HeaderField{Name: "date", Value: httpDate()})
	}
	c.writeBlock(st.id, end)
	if end {
		st.localEnded = true
	}
}

// encodeFields encodes the response's fields from fh, less those HTTP/2 forbids, with the
// content-length the handler set (clen, when sendLen). It reports a Date field. Under mu.
func (st *h2cstream) encodeFields() (hasDate bool) {
	c := st.c
	if st.sendLen && st.clen >= 0 {
		c.scratch = strconv.AppendInt(c.scratch[:0], st.clen, 10)
		_ = c.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: c.intern(c.scratch)})
	}
	for k, v := range st.fh.All() {
		switch string(k) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Content-Length":
			continue
		}
		name := c.lowerName(k)
		if name == "date" {
			hasDate = true
		}
		_ = c.henc.WriteField(hpack.HeaderField{Name: name, Value: c.intern(v)})
	}
	return hasDate
}

// encodeTrailers encodes the response's trailer fields from fh, as encodeFields its fields.
// Under mu.
func (st *h2cstream) encodeTrailers() {
	c := st.c
	for name := range st.fh.Trailers() {
		lname := c.lowerName(name)
		for _, v := range st.fh.PeekAll(string(name)) {
			_ = c.henc.WriteField(hpack.HeaderField{Name: lname, Value: c.intern(v)})
		}
	}
}

// lowerName returns a field name in lower case as intern does. Under mu.
func (c *h2conn) lowerName(k []byte) string {
	c.scratch = append(c.scratch[:0], k...)
	for i, b := range c.scratch {
		if 'A' <= b && b <= 'Z' {
			c.scratch[i] = b + 'a' - 'A'
		}
	}
	return c.intern(c.scratch)
}

const (
	// h2InternMax bounds the strings a connection keeps for intern, h2InternLen their length:
	// a few hundred bytes for a typical response's fields, at most a few KiB.
	h2InternMax = 64
	h2InternLen = 64
)

// intern returns b as a string, the same string as last time for the field names and short
// values responses repeat (content-type, server, the date within its second), so that encoding
// a response's fields allocates only for new ones. hpack's encoder keeps the strings it indexes,
// so they must be real strings, not views of the response's bytes. Under mu.
func (c *h2conn) intern(b []byte) string {
	if s, ok := c.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) > h2InternLen {
		return s
	}
	if c.strs == nil {
		c.strs = make(map[string]string, h2InternMax)
	} else if len(c.strs) >= h2InternMax {
		clear(c.strs)
	}
	c.strs[s] = s
	return s
}

// settle ends the response serveHTTP2 wrote, before its Ctx is reused: the HEADERS go now if
// they have not (a response without a body), then trailers or END_STREAM; an aborted stream
// is reset by handlerDone instead. Either way fh is let go.
func (st *h2cstream) settle(abort bool) {
	c := st.c
	c.lock()
	if !abort && !st.closed {
		st.finish()
	}
	st.fh = nil
	c.unlock(false)
}

// writeBlock writes the header block in hbuf as HEADERS and CONTINUATION frames of at most the
// client's frame size.
func (c *h2conn) writeBlock(id uint32, end bool) {
	block := c.hbuf.Bytes()
	max := int(c.peerMax)
	first := true
	for first || len(block) > 0 {
		frag := block[:min(len(block), max)]
		block = block[len(frag):]
		if first {
			c.writeErr(c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0}))
			first = false
		} else {
			c.writeErr(c.wfr.WriteContinuation(id, len(block) == 0, frag))
		}
	}
}

// finish ends the response when the handler returns: HEADERS if none left yet, then trailers or
// an empty DATA frame with END_STREAM. Under mu.
func (st *h2cstream) finish() {
	if st.writable() != nil {
		return
	}
	c := st.c
	trailers := st.hasTrailers()
	if !st.headerSent {
		st.sendHeader(!trailers)
		if !trailers {
			return
		}
	}
	if !trailers {
		c.writeErr(c.wfr.WriteData(st.id, true, nil))
		st.localEnded = true
		return
	}
	c.hbuf.Reset()
	if st.fhTrailers && st.fh != nil {
		st.encodeTrailers()
	}
	for k, vs := range st.hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			name = lowerHeader(name)
			for _, v := range vs {
				_ = c.henc.WriteField(hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	c.writeBlock(st.id, true)
	st.localEnded = true
}

// FlushError sends the HEADERS if not yet sent and has the connection's buffer flushed as soon
// as this goroutine blocks or ends, or another goroutine flushes it (flushSoon): not at once,
// so that what the handler writes next without waiting goes in the same write.
func (st *h2cstream) FlushError() error {
	if st.status == 0 {
		st.WriteHeader(http.StatusOK)
	}
	c := st.c
	c.lock()
	defer c.unlock(false)
	if err := st.writable(); err != nil {
		return err
	}
	if !st.headerSent {
		st.sendHeader(false)
	}
	c.flushSoon()
	return nil
}

func (st *h2cstream) Flush() { _ = st.FlushError() }

// SetReadDeadline bounds the request body's reads (read_timeout, h2serve.go).
func (st *h2cstream) SetReadDeadline(t time.Time) error {
	c := st.c
	c.mu.Lock()
	st.rdl = t
	st.wake()
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds the response's waits for flow-control credit (write_timeout); the
// socket's own writes are bounded by write_timeout in h2cWriter.
func (st *h2cstream) SetWriteDeadline(t time.Time) error {
	c := st.c
	c.mu.Lock()
	st.wdl = t
	st.wake()
	c.mu.Unlock()
	return nil
}

// EnableFullDuplex: the body can be read while the response is written; nothing to switch on.
func (st *h2cstream) EnableFullDuplex() error { return nil }

// lowerHeader is name in lower case, without allocating when it already is.
func lowerHeader(name string) string {
	for i := 0; i < len(name); i++ {
		if 'A' <= name[i] && name[i] <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}

// h2StatusValue is the :status value of code, without allocating for the usual ones.
func h2StatusValue(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 304:
		return "304"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

// h2Date caches the Date field's value for the second it names.
var h2Date atomic.Pointer[h2DateValue]

type h2DateValue struct {
	sec  int64
	text string
}

func httpDate() string {
	now := time.Now()
	if d := h2Date.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &h2DateValue{now.Unix(), now.UTC().Format(http.TimeFormat)}
	h2Date.Store(d)
	return d.text
}
