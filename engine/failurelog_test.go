package engine

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestFailureLogRateLimit: at most FailureLogPerSecond lines per pipeline per second; the next
// line written says how many were left out; pipelines do not share a budget; a panic (logged
// with its stack elsewhere) is not logged again.
func TestFailureLogRateLimit(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(1000, 0)
	f := &failureLog{clock: func() time.Time { return now }}
	fail := func(pipeline string, err error) {
		var fc fasthttp.RequestCtx
		c := AcquireCtx(&fc)
		defer ReleaseCtx(c)
		c.Pipeline = &Pipeline{Name: pipeline, Upstream: "app"}
		c.Path = append(c.Path, "/items"...)
		c.Target, c.Attempts = "127.0.0.1:1", 1
		c.Fail(502, err)
		f.record(log, c, 502, "")
	}
	cause := errors.New("upstream app: connecting: connection refused")
	for range 25 {
		fail("api", cause)
	}
	fail("other", cause) // its own budget
	if n := strings.Count(buf.String(), "pipeline=api"); n != FailureLogPerSecond {
		t.Errorf("%d lines for 25 failures in one second, want %d:\n%s", n, FailureLogPerSecond, buf.String())
	}
	if !strings.Contains(buf.String(), "pipeline=other") {
		t.Error("another pipeline's failure was suppressed by the first one's")
	}
	line := strings.SplitN(buf.String(), "\n", 2)[0]
	for _, want := range []string{"level=WARN", `msg="request failed: the gateway answered 502 Bad Gateway"`, "status=502", "path=/items", "upstream=app", "target=127.0.0.1:1", "attempts=1", `cause="upstream app: connecting: connection refused"`} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %s: %s", want, line)
		}
	}
	buf.Reset()
	now = now.Add(time.Second)
	fail("api", cause)
	if !strings.Contains(buf.String(), "suppressed=15") {
		t.Errorf("the first line of the next second does not count the 15 left out: %s", buf.String())
	}
	buf.Reset()
	fail("api", &PanicError{Pipeline: "api", Stage: "x", Value: "boom"})
	if buf.Len() != 0 {
		t.Errorf("a panic logged again: %s", buf.String())
	}
}
