package otellog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func testEnv(t testing.TB) *engine.BuildEnv {
	return &engine.BuildEnv{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pipeline: "api"}
}

func defaults() *Config {
	c := &Config{}
	c.SetDefaults()
	return c
}

// newBufFilter returns a filter writing into a buffer through the real sink.
func newBufFilter(t testing.TB, cfg *Config) (*Filter, *syncBuf) {
	t.Helper()
	f, err := build(cfg, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	fl := f.(*Filter)
	if fl.sink != nil {
		fl.sink.Close()
	}
	buf := &syncBuf{}
	fl.sink = newSink(buf, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { fl.Close() })
	return fl, buf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// serveOne runs a request through f and a terminal, closes f (flushing) and returns the output.
func serveOne(t *testing.T, f *Filter, buf *syncBuf, c *engine.Ctx, term func(*engine.Ctx)) string {
	t.Helper()
	enginetest.Serve(c, term, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.b.String()
}

func upstream(c *engine.Ctx) {
	c.Target = "127.0.0.1:9001"
	c.Attempts = 2
	c.UpstreamTime = 1500 * time.Microsecond
	c.FromUpstream = true
	enginetest.OK(c)
}

func TestJSONRecordSchema(t *testing.T) {
	cfg := defaults()
	cfg.RequestHeaders = []string{"User-Agent", "x-request-id", "authorization", "x-api-key", "x-missing"}
	cfg.Redact = []string{"X-Api-Key"}
	f, buf := newBufFilter(t, cfg)
	c := enginetest.NewCtx(t, "GET", "/v1/items?token=secret",
		"User-Agent", `curl/8 "quoted"`, "X-Request-Id", "r-1", "Authorization", "Bearer SECRET", "X-Api-Key", "KEY", "Host", "api.example.com")
	c.ClientAddr = netip.MustParseAddr("203.0.113.9")
	c.Start = time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC)
	out := serveOne(t, f, buf, c, upstream)

	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one line, got %q", out)
	}
	if strings.Contains(out, "SECRET") || strings.Contains(out, "KEY\"") || strings.Contains(out, "token") {
		t.Fatalf("a secret leaked: %s", out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	dur := rec["duration_ms"].(float64)
	delete(rec, "duration_ms")
	if dur <= 0 {
		t.Errorf("duration_ms = %v", dur)
	}
	want := map[string]any{
		"time":        "2026-11-26T10:00:00.123456Z",
		"method":      "GET",
		"host":        "api.example.com",
		"path":        "/v1/items",
		"status":      float64(200),
		"bytes":       float64(2),
		"upstream_ms": 1.5,
		"client":      "203.0.113.9",
		"upstream":    "127.0.0.1:9001",
		"attempts":    float64(2),
		"pipeline":    "test",
		"protocol":    "HTTP/1.1",
		"source":      "upstream",
		"flags":       "-",
		"bytes_in":    float64(0),
		"request_headers": map[string]any{
			"user-agent":    `curl/8 "quoted"`,
			"x-request-id":  "r-1",
			"authorization": "[REDACTED]",
			"x-api-key":     "[REDACTED]",
		},
	}
	if d := cmp.Diff(want, rec); d != "" {
		t.Errorf("record (-want +got):\n%s", d)
	}
}

func TestJSONFailureAndLocalReply(t *testing.T) {
	f, buf := newBufFilter(t, defaults())
	c := enginetest.NewCtx(t, "POST", "/v1/x")
	deny := denyFilter{}
	enginetest.Serve(c, upstream, f, deny)
	f.Close()
	var rec map[string]any
	if err := json.Unmarshal(buf.b.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.b.String())
	}
	if rec["status"] != float64(429) || rec["error"] != "quota \"gold\" exhausted\n" || rec["upstream"] != "" || rec["attempts"] != float64(0) {
		t.Errorf("local reply record: %v", rec)
	}
}

type denyFilter struct{}

func (denyFilter) OnRequest(c *engine.Ctx) engine.Verdict {
	return c.Fail(429, errors.New("quota \"gold\" exhausted\n"))
}
func (denyFilter) OnResponse(*engine.Ctx) {}

func TestTextFormat(t *testing.T) {
	cfg := defaults()
	cfg.Format = "text"
	cfg.RequestHeaders = []string{"user-agent", "cookie"}
	f, buf := newBufFilter(t, cfg)
	c := enginetest.NewCtx(t, "GET", "/a%20b", "User-Agent", "agent x=1", "Cookie", "sid=SECRET")
	c.Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	out := serveOne(t, f, buf, c, upstream)
	for _, want := range []string{
		"time=2026-01-02T03:04:05Z method=GET host=\"\" path=/a%20b status=200 bytes=2 duration_ms=",
		" upstream_ms=1.500 client=127.0.0.1 upstream=127.0.0.1:9001 attempts=2 pipeline=test protocol=HTTP/1.1",
		` header.user-agent="agent x=1" header.cookie=[REDACTED]` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text record lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("cookie leaked: %s", out)
	}
}

func TestEscaping(t *testing.T) {
	for _, in := range []string{"plain", "quote\"back\\slash", "ctl\x00\x1f\x7f", "line\nbreak\r", "bad\xff\xfeutf8", "ünïcødé"} {
		b := appendJSONString(nil, []byte(in))
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("%q → %s: %v", in, b, err)
			continue
		}
		if bytes.ContainsAny(b, "\n\r") {
			t.Errorf("%q → %s holds a line break", in, b)
		}
		if !strings.Contains(in, "\xff") && got != in {
			t.Errorf("%q round-trips as %q", in, got)
		}
		if s := appendJSONStringS(nil, in); !bytes.Equal(s, b) {
			t.Errorf("string and byte escapers differ: %s vs %s", s, b)
		}
		tv := appendTextValue(nil, []byte(in))
		if bytes.ContainsAny(tv, "\n\r ") && tv[0] != '"' {
			t.Errorf("text value %q not quoted: %s", in, tv)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"bad format", func(c *Config) { c.Format = "xml" }, "format"},
		{"empty output", func(c *Config) { c.Output = " " }, "output"},
		{"bad header", func(c *Config) { c.RequestHeaders = []string{"bad header"} }, "request_headers"},
		{"bad redact", func(c *Config) { c.Redact = []string{"a:b"} }, "redact"},
		{"max_size on stdout", func(c *Config) { c.MaxSize = 1024 }, "max_size"},
		{"negative backups", func(c *Config) { c.Output = "x.log"; c.MaxBackups = -1 }, "max_backups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			tt.mod(c)
			err := c.Validate()
			fe, ok := engine.AsFieldError(err)
			if !ok || fe.Field != tt.field {
				t.Fatalf("Validate() = %v, want an error on %s", err, tt.field)
			}
		})
	}
	c := defaults()
	c.Output, c.MaxSize, c.Format = "logs/access.log", 1<<20, "text"
	if err := c.Validate(); err != nil {
		t.Errorf("valid file config: %v", err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestFileReopenOnSIGHUP(t *testing.T) {
	env := testEnv(t)
	cfg := defaults()
	cfg.Output = "access.log"
	f, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	fl := f.(*Filter)
	path := filepath.Join(env.Dir, "access.log")
	serve := func() {
		c := enginetest.NewCtx(t, "GET", "/one")
		enginetest.Serve(c, upstream, fl)
	}
	serve()
	// logrotate's move: rename, then SIGHUP so the gateway opens a fresh file.
	waitFor(t, func() bool { st, err := os.Stat(path); return err == nil && st.Size() > 0 })
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := os.Stat(path); return err == nil })
	serve()
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, path+".old")); n != 1 {
		t.Errorf("rotated file has %d records, want 1", n)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Errorf("reopened file has %d records, want 1", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond) // polling a file system state; there is nothing to wait on
	}
}

func TestFileSizeRotation(t *testing.T) {
	env := testEnv(t)
	cfg := defaults()
	cfg.Output = "access.log"
	cfg.MaxSize = 2048
	cfg.MaxBackups = 2
	f, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	fl := f.(*Filter)
	path := filepath.Join(env.Dir, "access.log")
	total := 0
	for i := 0; i < 5; i++ {
		// Each burst is flushed, then rotation checks the size.
		for j := 0; j < 10; j++ {
			c := enginetest.NewCtx(t, "GET", "/rotate")
			enginetest.Serve(c, upstream, fl)
			total++
		}
		fl.sink.wake <- struct{}{}
		waitFor(t, func() bool {
			fl.sink.mu.Lock()
			defer fl.sink.mu.Unlock()
			return len(fl.sink.pending) == 0
		})
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, p := range []string{path, path + ".1", path + ".2"} {
		if _, err := os.Stat(p); err == nil {
			kept += len(readLines(t, p))
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("more than max_backups rotated files kept")
	}
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Errorf("no rotation happened: %v", err)
	}
	if kept == 0 || kept > total {
		t.Errorf("kept %d of %d records", kept, total)
	}
}

func TestValidatingStartsNothing(t *testing.T) {
	env := testEnv(t)
	env.Validating = true
	cfg := defaults()
	cfg.Output = "sub/access.log"
	if _, err := build(cfg, env); err == nil {
		t.Errorf("missing log folder not reported")
	}
	cfg.Output = "access.log"
	f, err := build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if f.(*Filter).sink != nil {
		t.Errorf("validation opened the log file")
	}
	if _, err := os.Stat(filepath.Join(env.Dir, "access.log")); err == nil {
		t.Errorf("validation created the log file")
	}
}

// TestDropsWhenOutputBlocked: a stuck output costs dropped records, not blocked requests.
func TestDropsWhenOutputBlocked(t *testing.T) {
	block := make(chan struct{})
	s := newSink(blockingWriter{block}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	done := make(chan struct{})
	go func() {
		for i := 0; i < 3*pendingMax/len(line); i++ {
			s.write(line)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writes blocked on a stuck output")
	}
	if s.dropped.Load() == 0 {
		t.Errorf("nothing dropped past the bound")
	}
	s.mu.Lock()
	n := len(s.pending)
	s.mu.Unlock()
	if n > pendingMax {
		t.Errorf("pending %d bytes, bound %d", n, pendingMax)
	}
	close(block)
	s.Close()
}

type blockingWriter struct{ ch chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.ch; return len(p), nil }

func TestAllocFree(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	cfg := defaults()
	cfg.RequestHeaders = []string{"user-agent", "x-request-id", "authorization"}
	for _, format := range []string{"json", "text"} {
		cfg.Format = format
		f, _ := newBufFilter(t, cfg)
		c := enginetest.NewCtx(t, "GET", "/v1/items", "User-Agent", "bench", "X-Request-Id", "abc", "Authorization", "Bearer x")
		upstream(c)
		f.OnResponse(c)
		if n := testing.AllocsPerRun(200, func() { f.OnResponse(c) }); n != 0 {
			t.Errorf("%s: %v allocations per record, want 0", format, n)
		}
	}
}

// cpuTime is the process's user+system CPU time. The benchmarks report cpu-ns/op beside ns/op:
// on a shared, overloaded machine wall time per op mostly measures waiting for a core, while CPU
// time per op (every thread: the writer goroutine and GC included) is the cost.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecord is the whole response phase: format a record and queue it for the writer,
// which writes to a file in the background.
func BenchmarkRecord(b *testing.B) {
	cfg := defaults()
	cfg.RequestHeaders = []string{"user-agent", "x-request-id", "authorization"}
	for _, format := range []string{"json", "text"} {
		b.Run(format, func(b *testing.B) {
			cfg.Format = format
			env := testEnv(b)
			cfg.Output = filepath.Join(env.Dir, "bench.log")
			f, err := build(cfg, env)
			if err != nil {
				b.Fatal(err)
			}
			defer f.(*Filter).Close()
			c := enginetest.NewCtx(b, "GET", "/v1/items", "User-Agent", "bench", "X-Request-Id", "abc", "Authorization", "Bearer x")
			upstream(c)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.(*Filter).OnResponse(c)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(f.(*Filter).sink.dropped.Load()), "dropped")
		})
	}
}

// BenchmarkFormat is the formatting alone.
func BenchmarkFormat(b *testing.B) {
	f := &Filter{headers: []header{{name: "user-agent"}, {name: "x-request-id"}, {name: "authorization", redacted: true}}}
	c := enginetest.NewCtx(b, "GET", "/v1/items", "User-Agent", "bench", "X-Request-Id", "abc", "Authorization", "Bearer x")
	upstream(c)
	buf := make([]byte, 0, 1024)
	now := time.Now()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = f.appendJSON(buf[:0], c, now, nil, nil)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
