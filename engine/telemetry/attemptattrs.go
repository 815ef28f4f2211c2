package telemetry

import (
	"net/netip"

	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// attemptInfo is what an upstream attempt's span takes from its target and upstream, the same for
// every attempt to them: server.address and server.port, network.peer.address and .port when the
// target is an IP address, sluice.upstream; and their encoding, so that a span carries them as
// fixed attributes (spanRecord.fixed) instead of splitting and parsing the target and writing
// them again per request.
type attemptInfo struct {
	target, upstream string
	named            bool // the request has a pipeline: sluice.upstream is set
	fixed            []attribute.KeyValue
	pb               []byte
}

// attemptSlots bounds the (target, upstream) pairs a pipeline keeps an attemptInfo for: a
// pipeline's pool is usually one to a few targets; attempts to others (a large pool, targets a
// discovery source replaced) record the same attributes one by one, allocating nothing either way.
const attemptSlots = 4

// attemptAttrs appends the attributes of an attempt to target (see attemptInfo).
func attemptAttrs(dst []attribute.KeyValue, target, upstream string, named bool) []attribute.KeyValue {
	host, port := splitHostPort(target)
	dst = append(dst, semconv.ServerAddress(host), semconv.ServerPort(port))
	if _, err := netip.ParseAddr(host); err == nil {
		// The target's address is the peer the connection goes to (a name resolves inside the
		// dialer, which does not say which address it picked).
		dst = append(dst, semconv.NetworkPeerAddress(host), semconv.NetworkPeerPort(port))
	}
	if named {
		dst = append(dst, attrUpstream.String(upstream))
	}
	return dst
}

func newAttemptInfo(target, upstream string, named bool) *attemptInfo {
	a := &attemptInfo{target: target, upstream: upstream, named: named}
	a.fixed = attemptAttrs(nil, target, upstream, named)
	for _, kv := range a.fixed {
		a.pb = appendKeyValue(a.pb, fSpanAttributes, kv)
	}
	return a
}

// attemptAttrs gives r the attributes of an attempt to target by c's upstream: as fixed ones
// when the pipeline keeps them (the first attemptSlots pairs it sees), otherwise one by one.
func (pi *pipeInfo) attemptAttrs(r *spanRecord, c *engine.Ctx, target string) {
	named := c.Pipeline != nil
	var up string
	if named {
		up = c.UpstreamName()
	}
	for i := range pi.attempts {
		a := pi.attempts[i].Load()
		if a == nil {
			a = newAttemptInfo(target, up, named)
			if !pi.attempts[i].CompareAndSwap(nil, a) {
				a = pi.attempts[i].Load() // another request filled the slot first
			}
		}
		if a.target == target && a.upstream == up && a.named == named {
			r.setFixed(a.fixed, a.pb)
			return
		}
	}
	r.attrs = attemptAttrs(r.attrs, target, up, named)
}
