package engine

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestCutLog: a cut by the upstream or by a write deadline is logged, at most
// FailureLogPerSecond lines per pipeline per second with the next line counting those left out;
// a client that went away is not logged; a cut without a Ctx names the request by its
// normalized path, without the query.
func TestCutLog(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, nil)), cuts: failureLog{clock: func() time.Time { return now }}}
	cut := func(pipeline string, ce *ResponseCutError) {
		var fc fasthttp.RequestCtx
		fc.Request.SetRequestURI("/items?key=secret")
		c := AcquireCtx(&fc)
		defer ReleaseCtx(c)
		c.Pipeline = &Pipeline{Name: pipeline, Upstream: "app"}
		c.Path = append(c.Path, "/items"...)
		c.Proto = "HTTP/1.1"
		c.Target, c.Attempts = "127.0.0.1:1", 1
		s.logCut(c, &fc, 0, ce)
	}
	upstream := &ResponseCutError{Upstream: true, Err: io.ErrUnexpectedEOF}
	for range 25 {
		cut("api", upstream)
	}
	cut("other", upstream) // its own budget
	if n := strings.Count(buf.String(), "pipeline=api"); n != FailureLogPerSecond {
		t.Errorf("%d lines for 25 cuts in one second, want %d:\n%s", n, FailureLogPerSecond, buf.String())
	}
	if !strings.Contains(buf.String(), "pipeline=other") {
		t.Error("another pipeline's cut was suppressed by the first one's")
	}
	line := strings.SplitN(buf.String(), "\n", 2)[0]
	for _, want := range []string{"level=WARN", `msg="response cut mid-body: the upstream's body failed"`, "method=GET", "path=/items", "proto=HTTP/1.1", "upstream=app", "target=127.0.0.1:1", `cause="unexpected EOF"`} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %s: %s", want, line)
		}
	}
	buf.Reset()
	now = now.Add(time.Second)
	cut("api", &ResponseCutError{Err: os.ErrDeadlineExceeded})
	if !strings.Contains(buf.String(), `msg="response cut mid-body: a write to the client passed its deadline"`) || !strings.Contains(buf.String(), "suppressed=15") {
		t.Errorf("the first line of the next second is not the deadline's, counting the 15 left out: %s", buf.String())
	}
	buf.Reset()
	cut("api", &ResponseCutError{Err: errors.New("broken pipe")})
	if buf.Len() != 0 {
		t.Errorf("a client that went away was logged: %s", buf.String())
	}

	// An HTTP/2 stream answered before it had a Ctx.
	var fc fasthttp.RequestCtx
	fc.Request.SetRequestURI("/a/../b?key=secret")
	s.logCut(nil, &fc, 7, &ResponseCutError{Err: os.ErrDeadlineExceeded})
	for _, want := range []string{"pipeline=\"\"", "path=/b", "proto=HTTP/2.0", "stream=7"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("line lacks %s: %s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("the query was logged: %s", buf.String())
	}
}
