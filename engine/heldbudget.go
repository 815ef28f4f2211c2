package engine

import (
	"crypto/tls"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// heldBudget is held_response_budget: the bytes of upstream responses the gateway may hold in
// memory at once, over all client connections, until their clients have read them. A response
// the balancer would hold (up to max_response_bytes) but that does not fit streams instead: it
// then holds only a buffer's worth, and the upstream connection waits for the client, as a
// response over max_response_bytes always does.
//
// A response's bytes are counted from when the balancer reserves them until the client
// connection's next read, which comes only once the response is written (fasthttp resets the
// response before it), or until the connection closes. Responses up to HeldUncounted bytes are not
// counted (the balancer does not ask): a shared counter updated for every request would cost every request (two atomic
// additions on one cache line contended by every core); what they hold is bounded by
// max_connections × HeldUncounted.
type heldBudget struct {
	limit int64
	used  atomic.Int64
}

// HeldUncounted is the size up to which a held response is not counted against the budget.
const HeldUncounted = 16 << 10

var (
	heldBytesGauge = promauto.With(metrics.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "sluice_held_response_bytes",
		Help: "Bytes of upstream responses held in memory until their clients read them (counted against held_response_budget; responses up to 16 KiB are not counted).",
	})
	heldBudgetGauge = promauto.With(metrics.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "sluice_held_response_budget_bytes",
		Help: "The server's held_response_budget (0: unlimited).",
	})
	heldRefused = promauto.With(metrics.Registry).NewCounter(prometheus.CounterOpts{
		Name: "sluice_responses_streamed_over_budget_total",
		Help: "Responses streamed rather than held because held_response_budget was used up.",
	})
)

func newHeldBudget(limit int64) *heldBudget {
	heldBudgetGauge.Set(float64(limit))
	return &heldBudget{limit: limit}
}

// reserve counts n more bytes, unless that would exceed the limit.
func (b *heldBudget) reserve(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		heldRefused.Inc()
		return false
	}
	heldBytesGauge.Add(float64(n))
	return true
}

func (b *heldBudget) give(n int64) {
	b.used.Add(-n)
	heldBytesGauge.Sub(float64(n))
}

// HeldResponseBytes is what responses hold of the server's held_response_budget now.
func (s *Server) HeldResponseBytes() int64 {
	if s.budget == nil {
		return 0
	}
	return s.budget.used.Load()
}

// HoldResponse asks to hold n more bytes of the response in memory until the client has read
// them (a response body the terminal reads whole). False means the server's
// held_response_budget is used up: stream the body instead. The bytes are given back by the
// client connection once the response is written. A request without a client connection (a
// subrequest, a test) has no budget. Terminals don't ask for responses of up to HeldUncounted
// bytes (see heldBudget).
func (c *Ctx) HoldResponse(n int) bool {
	if n <= 0 || c.Fast == nil {
		return true
	}
	if c.h2 != nil {
		// An HTTP/2 stream holds its response until the handler has written it.
		return c.h2.hold(int64(n))
	}
	conn := c.Fast.Conn()
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	cc, ok := conn.(*clientConn)
	if !ok || cc.budget == nil {
		return true
	}
	if !cc.budget.reserve(int64(n)) {
		return false
	}
	cc.heldBytes.Add(int64(n))
	return true
}

// releaseHeld gives back what c's response held of the budget.
func (c *clientConn) releaseHeld() {
	if n := c.heldBytes.Swap(0); n != 0 && c.budget != nil {
		c.budget.give(n)
	}
}
