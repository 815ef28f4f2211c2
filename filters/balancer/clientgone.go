package balancer

import (
	"errors"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// A client that goes away (an HTTP/2 stream reset, or its connection closed:
// engine.Ctx.ClientContext) ends its upstream exchange at once: the upstream connection's
// pending read or write fails, the connection is closed rather than pooled, no retry follows and
// the target's health is not charged with it. Without this, a client resetting streams as fast
// as it opens them (CVE-2023-44487) would keep upstream requests running for nobody. HTTP/1.x
// requests carry no ClientContext (fasthttp does not say when a client leaves) and pay nothing.

// errClientGone is the attempt's error when the client went away during it.
var errClientGone = errors.New("the client went away")

// watchClient makes conn's pending I/O fail as soon as c's client goes away; the returned
// function disarms it (nil when there is nothing to watch).
func watchClient(c *engine.Ctx, conn *upstreamConn) func() bool {
	if c.ClientContext == nil {
		return nil
	}
	return engine.AfterFunc(c.ClientContext, func() { // context.AfterFunc, cheaper for HTTP/2 streams
		conn.cut.Store(true) // before the deadline: see upstreamConn.arm
		_ = conn.SetDeadline(longAgo)
	})
}

// disarm stops a watch; false when it has fired already (conn then has a past deadline and must
// not be pooled).
func disarm(stop func() bool) bool { return stop == nil || stop() }

// clientGone reports whether c's client has gone away.
func clientGone(c *engine.Ctx) bool {
	return c.ClientContext != nil && c.ClientContext.Err() != nil
}

// longAgo is a deadline long past: setting it ends pending I/O at once.
var longAgo = time.Unix(1, 0)
