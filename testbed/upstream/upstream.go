// Package upstream is the demo and test upstream server: it echoes each request as JSON (so tests
// and people can inspect what the gateway forwarded), and can be slow, flaky or large on demand.
//
//	GET /healthz            200 "ok" (503 while the server is marked unhealthy)
//	ANY /big?size=16MiB     a body of that many bytes ('x' repeated), text/plain
//	ANY /bytes?size=N       like /big, as application/octet-stream
//	ANY /anything           200 JSON {name, method, uri, path, query, headers, body_len, body_sha256, remote}
//	?delay=50ms             waits before answering (any path)
//	?status=503             answers with that status (any path)
//	?echo_body=1            answers the request body itself
package upstream

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// Options configure the server.
type Options struct {
	Name string
	// Delay is added to every answer (a slow upstream).
	Delay time.Duration
	// FailRatio is the share of requests answered 503 (a flaky upstream).
	FailRatio float64
	// Log, if set, receives one line per request: "METHOD X-Test-Id-value".
	Log *os.File
}

// Server is the upstream's handler with its counters.
type Server struct {
	opt      Options
	Requests atomic.Int64
	mu       sync.Mutex
	logw     *bufio.Writer
}

// New returns a server.
func New(opt Options) *Server {
	s := &Server{opt: opt}
	if opt.Log != nil {
		s.logw = bufio.NewWriter(opt.Log)
	}
	return s
}

// Echo is what the server answers about a request.
type Echo struct {
	Name       string              `json:"name"`
	Method     string              `json:"method"`
	URI        string              `json:"uri"`
	Path       string              `json:"path"`
	Query      string              `json:"query"`
	Headers    map[string][]string `json:"headers"`
	BodyLen    int                 `json:"body_len"`
	BodySHA256 string              `json:"body_sha256"`
	Remote     string              `json:"remote"`
}

// Handle serves one request.
func (s *Server) Handle(c *fasthttp.RequestCtx) {
	s.Requests.Add(1)
	args := c.QueryArgs()
	if s.logw != nil {
		s.mu.Lock()
		fmt.Fprintf(s.logw, "%s %s\n", c.Method(), c.Request.Header.Peek("X-Test-Id"))
		s.logw.Flush()
		s.mu.Unlock()
	}
	delay := s.opt.Delay
	if d, err := time.ParseDuration(string(args.Peek("delay"))); err == nil {
		delay = d
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	c.Response.Header.Set("X-Upstream", s.opt.Name)
	if string(c.Path()) == "/healthz" {
		c.SetBodyString("ok\n")
		return
	}
	if st, err := strconv.Atoi(string(args.Peek("status"))); err == nil && st >= 100 && st <= 599 {
		c.SetStatusCode(st)
		c.SetBodyString(fasthttp.StatusMessage(st) + "\n")
		return
	}
	if s.opt.FailRatio > 0 && rand.Float64() < s.opt.FailRatio {
		c.SetStatusCode(fasthttp.StatusServiceUnavailable)
		c.SetBodyString("flaky upstream failed on purpose\n")
		return
	}
	switch string(c.Path()) {
	case "/big", "/bytes":
		size, err := engine.ParseSize(string(args.Peek("size")))
		if err != nil || size <= 0 {
			size = 16 << 20
		}
		if string(c.Path()) == "/big" {
			c.SetContentType("text/plain; charset=utf-8")
		} else {
			c.SetContentType("application/octet-stream")
		}
		body := make([]byte, size)
		for i := range body {
			body[i] = 'x'
		}
		c.SetBody(body)
		return
	}
	if len(args.Peek("echo_body")) > 0 {
		c.SetContentType(string(c.Request.Header.ContentType()))
		c.SetBody(c.Request.Body())
		return
	}
	body := c.Request.Body()
	sum := sha256.Sum256(body)
	e := Echo{
		Name: s.opt.Name, Method: string(c.Method()), URI: string(c.Request.Header.RequestURI()),
		Path: string(c.URI().PathOriginal()), Query: string(c.URI().QueryString()),
		Headers: map[string][]string{}, BodyLen: len(body), BodySHA256: hex.EncodeToString(sum[:]),
		Remote: c.RemoteAddr().String(),
	}
	for k, v := range c.Request.Header.All() {
		e.Headers[string(k)] = append(e.Headers[string(k)], string(v))
	}
	for _, v := range e.Headers {
		sort.Strings(v)
	}
	c.SetContentType("application/json")
	out, _ := json.MarshalIndent(e, "", "  ")
	c.SetBody(append(out, '\n'))
}
