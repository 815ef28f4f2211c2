package engine

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// FailureLogPerSecond is how many lines a pipeline may log per second about the 5xx answers the
// gateway made itself (a dead upstream under load fails every request: the log must say so
// without growing by a line per request). A line after a quiet spell says how many were
// suppressed.
const FailureLogPerSecond = 10

// failureLog logs the reason for every 5xx the gateway produced itself (c.Failure set, by
// c.Fail: no target, connect failure, upstream timeout, a Wasm trap, a Redis store down with
// on_store_error = "deny", …), rate-limited per pipeline. A 5xx relayed from an upstream is
// the upstream's answer, not the gateway's: it is not logged here.
type failureLog struct {
	mu    sync.Mutex
	pipes map[string]*LogLimit // each pipeline's one-second window
	// clock, when set (tests), replaces time.Now.
	clock func() time.Time
}

// record logs c's failure, or counts it as suppressed when the pipeline has used up this
// second's lines. It runs only for a request answered with a 5xx that has a Failure.
func (f *failureLog) record(log *slog.Logger, c *Ctx, status int, reqIDHeader string) {
	var pe *PanicError
	if errors.As(c.Failure, &pe) {
		return // logged with its stack by Server.serve
	}
	pipeline, entry := "", ""
	upstream := c.UpstreamName()
	if p := c.ServingPipeline(); p != nil {
		pipeline = p.Name
	}
	if p := c.EntryPipeline(); p != nil && p.Name != pipeline {
		entry = p.Name // route.go: another pipeline handed the request on
	}
	ok, suppressed := f.allow(pipeline)
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("pipeline", pipeline),
		slog.Int("status", status),
		slog.String("method", string(c.Request.Header.Method())),
		// The normalized path, without the query, which may carry credentials.
		slog.String("path", string(c.Path)),
	)
	if entry != "" {
		attrs = append(attrs, slog.String("entry_pipeline", entry))
	}
	if upstream != "" {
		attrs = append(attrs, slog.String("upstream", upstream))
	}
	if c.Target != "" {
		attrs = append(attrs, slog.String("target", c.Target), slog.Int("attempts", c.Attempts))
	}
	attrs = append(attrs, slog.String("cause", c.Failure.Error()))
	if reqIDHeader != "" {
		attrs = append(attrs, slog.String("request_id", string(c.Request.Header.Peek(reqIDHeader))))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	log.LogAttrs(c.Context, slog.LevelWarn, "request failed: the gateway answered "+statusText(status), attrs...)
}

// allow reports whether pipeline may log another line in this one-second window, and how many
// of its lines were suppressed since its last one; a refusal counts as one more suppressed.
func (f *failureLog) allow(pipeline string) (ok bool, suppressed int) {
	now := time.Now
	if f.clock != nil {
		now = f.clock
	}
	f.mu.Lock()
	if f.pipes == nil {
		f.pipes = map[string]*LogLimit{}
	}
	w := f.pipes[pipeline]
	if w == nil {
		w = &LogLimit{}
		f.pipes[pipeline] = w
	}
	f.mu.Unlock()
	return w.Allow(now(), FailureLogPerSecond)
}

// statusText is "502 Bad Gateway" and the like.
func statusText(status int) string {
	return strconv.Itoa(status) + " " + fasthttp.StatusMessage(status)
}
