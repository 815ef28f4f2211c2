package engine

// BytesIn returns the request body bytes received so far: a streamed body's bytes read (by the
// balancer or a filter), else the buffered body's length. Counting never reads a body.
func (c *Ctx) BytesIn() int64 {
	if c.body.r != nil {
		return c.body.n
	}
	if c.Request.IsBodyStream() {
		// fasthttp's stream, not taken over by the server (stream.go): its declared length.
		return max(int64(c.Request.Header.ContentLength()), 0)
	}
	return int64(len(c.Request.Body()))
}

// BytesOut returns the response body bytes sent or to be sent: for a streamed response
// followed to its end (DeferFinish), the bytes written; for one still streaming, its declared
// Content-Length (0 when unknown); otherwise the held body's length. A HEAD response has none.
func (c *Ctx) BytesOut() int64 {
	if c.fin.c == c {
		return c.fin.read
	}
	if c.Request.Header.IsHead() {
		return 0
	}
	if c.Response.IsBodyStream() {
		return max(int64(c.Response.Header.ContentLength()), 0)
	}
	return int64(len(c.Response.Body()))
}
