package engine

import "github.com/valyala/fasthttp"

// Phase tells a stage's request phase from its response phase.
type Phase uint8

const (
	PhaseRequest Phase = iota
	PhaseResponse
)

func (p Phase) String() string {
	if p == PhaseResponse {
		return "response"
	}
	return "request"
}

// Observer watches requests as they flow: the telemetry package implements it with spans and
// metrics. A gateway without one calls nothing, so the request path stays allocation-free with
// telemetry off.
type Observer interface {
	// StartRequest runs once the pipeline is chosen, before its first stage (p is nil when no
	// pipeline matched). It may replace c.Context with one carrying the server span.
	StartRequest(c *Ctx, p *Pipeline)
	// EndRequest runs after the response phase, with the final c.Response. A response body that
	// streams is still to be written: an observer that needs its end (a gRPC call's status in
	// the trailers) asks for it with c.DeferFinish (respfinish.go).
	EndRequest(c *Ctx)
	// StartStage runs before a filter's phase, only on a request that asked for it with
	// c.ObserveStages (a traced request's filter spans), or for a phase that gets no slot in
	// c.StageTimes (past MaxStageTimes). Every other phase is only recorded in c.StageTimes,
	// which EndRequest reads. Its result is handed back to EndStage.
	StartStage(c *Ctx, s *Stage, ph Phase) any
	// EndStage runs after a filter's phase with its verdict, when StartStage ran before it;
	// c.PhaseUnrecorded says the phase has no slot in c.StageTimes.
	EndStage(c *Ctx, s *Stage, ph Phase, tok any, v Verdict)
}

// AttemptObserver is implemented by observers that also trace upstream attempts; the balancer
// calls it around each try (retries included).
type AttemptObserver interface {
	// StartAttempt runs before req is sent to target. It appends the trace context the attempt
	// propagates to lines, as header lines each ending in CRLF ("Traceparent: …\r\n"), and
	// returns them with a token for EndAttempt. The balancer writes the lines after req's own
	// headers and, when there are any, leaves req's own Traceparent and Tracestate headers out,
	// which the lines replace. Writing lines instead of setting headers in req saves fasthttp a
	// normalize-and-copy per header on every request.
	StartAttempt(c *Ctx, target string, req *fasthttp.Request, lines []byte) (tok any, out []byte)
	// EndAttempt runs after the attempt with the upstream status (0 if none) and its error.
	EndAttempt(c *Ctx, tok any, status int, err error)
}

// Observer returns the observer of the request's pipeline, or nil when telemetry is off.
func (c *Ctx) Observer() Observer {
	if c.Pipeline == nil {
		return nil
	}
	return c.Pipeline.observer
}

// Observer returns the observer installed with SetObserver (nil: none), for the admin API's
// dashboard, which reads the telemetry behind it.
func (g *Gateway) Observer() Observer { return g.observer }
