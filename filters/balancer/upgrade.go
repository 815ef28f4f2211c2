package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

var (
	hdrUpgrade       = []byte("Upgrade")
	hdrHTTP2Settings = []byte("HTTP2-Settings")
	tokenUpgrade     = []byte("upgrade")
	errNotUpgraded   = errors.New("upstream did not switch protocols")
)

func hasToken(list, token []byte) bool {
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, nil
		}
		if ascii.EqualFold(bytes.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

// serveUpgrade proxies a protocol switch: it sends the handshake to one target on a connection of
// its own, and if the target answers 101 Switching Protocols it relays the 101 to the client and
// then copies bytes both ways until either side closes or the connection stays idle longer than
// idle. Any other answer is returned as an ordinary response. Upgrades are not retried: the
// handshake may have had effects.
// x is the prepared exchange (x.upgrade set).
func (u *Upstream) serveUpgrade(c *engine.Ctx, x *exchange, idle time.Duration) {
	set := u.set.Load()
	// prepare removed the hop-by-hop headers; a protocol switch needs these two back.
	c.Request.Header.SetBytesV("Upgrade", x.protocol)
	if len(x.settings) > 0 {
		c.Request.Header.SetBytesKV(hdrHTTP2Settings, x.settings)
		c.Request.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	} else {
		c.Request.Header.Set("Connection", "Upgrade")
	}

	var key uint64
	var hasKey bool
	if u.hashed {
		key, hasKey = u.hash.key(c)
	}
	i := set.picker.pick(set.targets, key, hasKey, nil, u.inflight.Load(), time.Now().UnixNano())
	if i < 0 {
		c.AddFlags(engine.FlagNoHealthyUpstream)
		c.Fail(fasthttp.StatusServiceUnavailable, errNoTarget)
		return
	}
	t := set.targets[i]
	c.Target = t.addr
	c.Attempts++
	begin := time.Now()
	conn, err := t.dial(t.addr, u.connectTimeout)
	if err != nil {
		u.onFailure(t, time.Now().UnixNano())
		c.AddFlags(flagsOf(failConnect, err))
		c.Fail(fasthttp.StatusBadGateway, fmt.Errorf("upstream %s: upgrade: %w", u.name, err))
		return
	}
	_ = conn.SetDeadline(begin.Add(u.requestTimeout))
	br := bufio.NewReader(conn)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.SkipBody = true
	if x.noHost {
		c.Request.Header.SetHost(t.name)
	}
	err = writeRequest(conn, c.Request, x)
	if err == nil {
		err = resp.Header.Read(br)
	}
	c.UpstreamTime += time.Since(begin)
	if err != nil {
		conn.Close()
		u.onFailure(t, time.Now().UnixNano())
		c.AddFlags(flagsOf(classify(err), err))
		c.Fail(failStatus(classify(err), err), fmt.Errorf("upstream %s: upgrade: %w", u.name, err))
		return
	}
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// A refusal (e.g. 400 or 426) is an ordinary response with a body.
		resp.SkipBody = false
		defer conn.Close()
		if err := resp.ReadBody(br, 1<<20); err != nil {
			c.AddFlags(engine.FlagUpstreamReset)
			c.Fail(fasthttp.StatusBadGateway, fmt.Errorf("upstream %s: upgrade refusal: %w", u.name, errors.Join(errNotUpgraded, err)))
			return
		}
		resp.Header.CopyTo(&c.Response.Header)
		c.Response.SetBodyRaw(append([]byte(nil), resp.Body()...))
		c.FromUpstream = true
		u.onSuccess(t, time.Now().UnixNano())
		return
	}
	u.onSuccess(t, time.Now().UnixNano())
	c.FromUpstream = true
	_ = conn.SetDeadline(time.Time{})
	resp.Header.CopyTo(&c.Response.Header)
	c.Response.Header.Set("Connection", "Upgrade")
	c.Response.SkipBody = true
	t.st.inflight.Add(1)
	c.Fast.Hijack(func(client net.Conn) {
		defer t.st.inflight.Add(-1)
		defer conn.Close()
		// Bytes the upstream sent right after its 101 are still in br.
		tunnel(client, &bufferedConn{Conn: conn, r: br}, idle)
	})
}

// bufferedConn reads through a bufio.Reader that may hold bytes already read from Conn.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// tunnel copies both ways until one side ends or nothing moves for idle; then both close.
func tunnel(a, b net.Conn, idle time.Duration) {
	var once sync.Once
	closeBoth := func() { once.Do(func() { a.Close(); b.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyIdle(a, b, idle); closeBoth() }()
	go func() { defer wg.Done(); copyIdle(b, a, idle); closeBoth() }()
	wg.Wait()
}

// copyIdle copies src to dst, giving up when src sends nothing for idle.
func copyIdle(dst, src net.Conn, idle time.Duration) {
	buf := make([]byte, 32<<10)
	for {
		if idle > 0 {
			_ = src.SetReadDeadline(time.Now().Add(idle))
		}
		n, err := src.Read(buf)
		if n > 0 {
			if idle > 0 {
				_ = dst.SetWriteDeadline(time.Now().Add(idle))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, an idle timeout or a reset: the tunnel ends
		}
	}
}
