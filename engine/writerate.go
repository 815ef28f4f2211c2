package engine

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

// min_write_rate: a client must read a response at least this fast, measured over windows of
// min_write_rate_window, or its connection is closed. write_timeout bounds a whole response's
// write; this catches a client that stops reading long before that, and lets a large download
// over a slow but working link run past it.
//
// The gateway's own writes cannot measure the client: the kernel's send buffer (up to 4 MiB with
// autotuning) takes a write long before the client reads it, and wakes a blocked writer only once
// half of it is free. So the watchdog asks the kernel instead, once per window, for each
// connection in the middle of writing a response: how many bytes the client has acknowledged in
// all (TCP_INFO's tcpi_bytes_acked) and how many wait in the send queue (SIOCOUTQ). A connection
// is too slow when, over a whole window, the client acknowledged fewer bytes than the smaller of
// rate × window and what was already queued for it when the window began: data was there to read,
// and it did not read it at the minimum rate. A response waiting on its upstream (a slow stream)
// has nothing queued, and is never judged. Nothing of this runs per request.

var (
	slowReaders = promauto.With(metrics.Registry).NewCounter(prometheus.CounterOpts{
		Name: "sluice_client_slow_reader_disconnects_total",
		Help: "Client connections closed because the client read a response slower than min_write_rate.",
	})
	slowLog struct {
		sync.Mutex
		last time.Time
	}
)

// checkRate samples c's progress once per window while it writes a response, and closes it when
// its client reads too slowly. Only the watchdog calls it.
func (w *deadlineWatch) checkRate(c *clientConn, now int64) {
	if c.phase.Load() != phaseWriting {
		c.rateAt = 0
		return
	}
	if c.rateAt != 0 && now-c.rateAt < w.rateWindow {
		return
	}
	acked, queued, ok := tcpProgress(c)
	if !ok {
		return
	}
	if c.rateAt != 0 && c.rateQueued > 0 {
		need := min(w.minRate*w.rateWindow/int64(time.Second), c.rateQueued)
		if int64(acked-c.rateAcked) < need {
			w.cutSlow(c, acked-c.rateAcked, now-c.rateAt)
			c.rateAt = 0
			return
		}
	}
	c.rateAt, c.rateAcked, c.rateQueued = now, acked, queued
}

// cutSlow ends the write under way on c (a past write deadline) and the connection with it.
func (w *deadlineWatch) cutSlow(c *clientConn, read uint64, over int64) {
	want := c.wd.want.Load()
	if c.phase.Load() != phaseWriting || !c.wd.want.CompareAndSwap(want, 1) {
		return // the response was written meanwhile
	}
	c.mu.Lock()
	_ = c.wd.apply(c, true, w.now.Load())
	c.mu.Unlock()
	slowReaders.Inc()
	slowLog.Lock()
	quiet := time.Since(slowLog.last) < time.Second
	if !quiet {
		slowLog.last = time.Now()
	}
	slowLog.Unlock()
	if !quiet {
		log := w.log
		if log == nil {
			log = slog.Default()
		}
		log.Info("closing a client connection that reads slower than min_write_rate",
			"peer", c.peer.String(), "bytes_read", read, "over", time.Duration(over).String())
	}
}
