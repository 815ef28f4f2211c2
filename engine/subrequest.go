package engine

// ServeAfter runs a subrequest from f's place in the pipeline: the request phases of the stages
// after f, the Terminal unless one of them answers, then the response phases of those stages in
// reverse order (RequestOnly stages have none). f's own phases and the stages before it do not
// run. It is for filters that fetch on their own, such as the cache refreshing a stale entry in
// the background: the subrequest sees what the upstream side of the pipeline does (later
// filters, strip_prefix, the balancer) without passing the client-side filters again. If f is
// not in the pipeline, every stage runs. c must be a Ctx of its own (AcquireCtx), not the
// client's.
func (p *Pipeline) ServeAfter(c *Ctx, f Filter) {
	c.Pipeline = p
	start := 0
	for i := range p.stages {
		if p.stages[i].Filter == f {
			start = i + 1
			break
		}
	}
	ran, answered := start, false
	for i := start; i < len(p.stages); i++ {
		ran = i + 1
		if p.stages[i].Filter.OnRequest(c) == Respond {
			answered = true
			break
		}
	}
	if !answered {
		p.terminal.Serve(c)
	}
	for j := p.respondersIn[ran] - 1; j >= 0 && p.responders[j] >= start; j-- {
		p.stages[p.responders[j]].Filter.OnResponse(c)
	}
}
